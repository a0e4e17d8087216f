"""The key=value line format: every value survives a round trip and stays on one line."""

from __future__ import annotations

import pytest

from tests.cli_helpers import parse_plain_line
from wesctl.render import plain_line, plain_value

AWKWARD = [
    "",
    "-",
    "-x",
    "two words",
    'say "hi"',
    "back\\slash",
    "key=value",
    "line one\nline two\r\n",
    "tab\there",
    "\x1b[31mred\x1b[0m",  # a terminal escape stays inert
    "nel\x85 ls\u2028 ps\u2029 rlo\u202e nbsp\u00a0",
    "emoji 🧬 and CJK 基因",
    "\U000e0001 tag character",
    "x" * 300,
]


@pytest.mark.parametrize("value", AWKWARD)
def test_every_value_reads_back_from_exactly_one_line(value: str) -> None:
    line = plain_line([("run", "r1"), ("reason", value), ("provider_id", None)])

    assert len(line.splitlines()) == 1
    assert line.isprintable()
    assert parse_plain_line(line) == {"run": "r1", "reason": value, "provider_id": None}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        ("sevenbridges", "sevenbridges"),
        ("2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"),
        ("", '""'),
        ("-", '"-"'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a\nb", '"a\\nb"'),
    ],
)
def test_values_are_bare_when_they_can_be(value: str | None, shown: str) -> None:
    assert plain_value(value) == shown
