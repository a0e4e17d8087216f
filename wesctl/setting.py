"""How a setting is declared: one `setting(...)` per dataclass field says its variable, default,
parser and help, and parsing, `.env.example`, `config show` and the typed settings all read that
one declaration. `wesctl.config` declares wesctl's own settings this way, and every provider
package its own."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_SETTING = "wesctl.setting"


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Field:
    """One setting: where it is read from, how it is parsed, and how it is documented.

    `attr` keys the setting in `Settings.sources` and in command-line overrides (a provider's
    setting: `<provider>_<attribute>`). `required_for` marks a provider setting the provider
    cannot work without and says what for: a provider is configured when all of them are set.
    `example` is a value of the expected form, for messages that ask for one.
    """

    attr: str
    env: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    credential: str | None = None
    section: str = "wesctl"
    required_for: str | None = None
    example: str | None = None


def setting(
    env: str,
    default: str | None,
    parse: Callable[[str], Any],
    help: str,
    *,
    secret: bool = False,
    credential: str | None = None,
    section: str = "wesctl",
    required_for: str | None = None,
    example: str | None = None,
    repr: bool = True,
) -> Any:
    """Declare a settings dataclass field as the setting read from `env`."""
    declared = Field(
        "", env, default, parse, help, secret, credential, section, required_for, example
    )
    return dataclasses.field(repr=repr, metadata={_SETTING: declared})


def secret_setting(env: str, help: str, *, credential: str, required_for: str | None = None) -> Any:
    """Declare an optional secret read from `env` or from the systemd credential `credential`."""
    return setting(
        env,
        "",
        optional_secret,
        help,
        secret=True,
        credential=credential,
        required_for=required_for,
    )


def declared(cls: type[Any], *, prefix: str = "", section: str | None = None) -> tuple[Field, ...]:
    """Return the settings `cls` declares, in declaration order, keyed `<prefix><attribute>`."""
    found: list[Field] = []
    for item in dataclasses.fields(cls):
        declaration = item.metadata.get(_SETTING)
        if isinstance(declaration, Field):
            found.append(
                dataclasses.replace(
                    declaration,
                    attr=prefix + item.name,
                    section=section or declaration.section,
                )
            )
    return tuple(found)


def positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def seconds(raw: str) -> int:
    """Parse '300', '300s', '5m', '2h' into whole seconds."""
    text = raw.strip().lower()
    units = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)].strip().isdigit():
            value = int(text[: -len(suffix)]) * units[suffix]
            break
    else:
        if not text.isdigit():
            raise ValueError("must be a number of seconds, such as 300 or 5m")
        value = int(text)
    if value <= 0:
        raise ValueError("must be more than zero seconds")
    return value


def port(raw: str) -> int:
    value = int(raw.strip())
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def text(raw: str) -> str:
    return raw.strip()


def optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """The parser of an optional value: blank is None, anything else is `parse`d stripped."""

    def parse_optional(raw: str) -> T | None:
        value = raw.strip()
        return parse(value) if value else None

    return parse_optional


def matching(pattern: re.Pattern[str], must_be: str) -> Callable[[str], str]:
    """The parser of a value `pattern` matches in full; `must_be` says what it must be."""

    def parse_matching(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {must_be}")
        return value

    return parse_matching


optional_text = optional(text)
optional_secret = optional(Secret)
