"""The wesctl command line: thin Typer commands over wesctl.services.

Each command parses its options, calls one service function inside `cli_errors()`, renders the
result on stdout and picks the exit code. Errors are one line on stderr; exit codes follow
sysexits: 1 failures, 2 usage, 75 temporary (database/provider down), 78 configuration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from wesctl import __version__
from wesctl.config import Settings, load_settings
from wesctl.errors import ConfigError, WesctlError
from wesctl.log import configure_logging

logger = logging.getLogger("wesctl")

app = typer.Typer(
    name="wesctl",
    help="Submit, track and cancel GA4GH WES runs at execution providers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)
runs_app = typer.Typer(help="Enqueue, list and inspect runs.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(config_app, name="config")


@dataclass
class CliState:
    """Global options, resolved into Settings only when a command needs them."""

    env_file: Path | None = None
    overrides: dict[str, str | None] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.overrides, self.env_file)
        return self._settings


def _state(ctx: typer.Context) -> CliState:
    state = ctx.find_root().obj
    assert isinstance(state, CliState)
    return state


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """The single edge where errors become one stderr line and an exit code."""
    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            logger.error("configuration error: %s", problem)
        raise typer.Exit(exc.exit_code) from None
    except WesctlError as exc:
        logger.error("%s", exc.message)
        raise typer.Exit(exc.exit_code) from None


def _open(ctx: typer.Context, command: str, *, check_schema: bool = True) -> Any:
    from wesctl.services.runtime import Runtime

    runtime = Runtime.open(_state(ctx).settings(), command=command, check_schema=check_schema)
    ctx.call_on_close(runtime.close)
    return runtime


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wesctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Read settings from this file instead of ./.env."),
    ] = None,
    database_uri: Annotated[
        str | None,
        typer.Option("--database-uri", help="Override DATABASE_URI.", show_default=False),
    ] = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs.")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Warnings and errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Submit, track and cancel GA4GH WES runs at execution providers.

    Settings come from the environment (DATABASE_URI, DAEMON_*, SEVENBRIDGES_*, AWS_*, WESCTL_*),
    an env file and systemd credentials; see `wesctl config show`.
    """
    configure_logging(-1 if quiet else verbose)
    ctx.obj = CliState(env_file=env_file, overrides={"database_uri": database_uri})


# --- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade wesctl's schema (idempotent; never touches the WES API's data).

    Example: wesctl db upgrade
    """
    from wesctl.db import schema
    from wesctl.db.engine import database_errors

    with cli_errors():
        runtime = _open(ctx, "db-upgrade", check_schema=False)
        with database_errors():
            before, after = schema.upgrade(runtime.engine)
    if before == after:
        typer.echo(f"schema already at {after}; nothing to do")
    else:
        typer.echo(f"schema upgraded from {before or 'empty'} to {after}")


@db_app.command("status")
def db_status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the schema revision and whether an upgrade is pending.

    Exit code 0 when up to date, 1 when `wesctl db upgrade` is needed.

    Example: wesctl db status --json
    """
    from wesctl.db import schema
    from wesctl.db.engine import database_errors

    with cli_errors():
        runtime = _open(ctx, "db-status", check_schema=False)
        with database_errors():
            status = schema.schema_status(runtime.engine)
    data = {
        "current": status.current,
        "head": status.head,
        "upgrade_pending": not status.up_to_date,
        "wes_api_tables": status.has_api_tables,
        "wes_api_revision": status.api_revision,
    }
    if as_json:
        from wesctl.render import print_json

        print_json(data)
    else:
        from wesctl.render import key_value_table

        key_value_table(
            [(key.replace("_", " "), str(value)) for key, value in data.items()],
            ("", "VALUE"),
        )
    raise typer.Exit(0 if status.up_to_date else 1)


# --- runs -------------------------------------------------------------------------------------


def _json_option(value: str | None, what: str) -> Any:
    """Parse inline JSON or @file."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{what} is not valid JSON: {exc.msg}") from None


def _tag_pairs(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"tag {pair!r} is not KEY=VALUE")
        tags[key] = value
    return tags


_DURATION = re.compile(r"^(\d+)([smhd])$")


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h or 7d")
    number, unit = int(match.group(1)), match.group(2)
    return timedelta(seconds=number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


@runs_app.command("add")
def runs_add(
    ctx: typer.Context,
    workflow_url: Annotated[
        str, typer.Option("--workflow-url", "-u", help="App id, workflow id, ARN or URL.")
    ],
    workflow_type: Annotated[str, typer.Option("--type", help="Workflow language.")] = "CWL",
    workflow_type_version: Annotated[str, typer.Option("--type-version")] = "v1.0",
    params: Annotated[
        str | None, typer.Option("--params", "-p", help="workflow_params as JSON, or @FILE.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="KEY=VALUE (repeatable).")
    ] = None,
    tags_json: Annotated[str | None, typer.Option("--tags", help="tags as JSON, or @FILE.")] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="sevenbridges or healthomics (stored in tags).")
    ] = None,
    engine: Annotated[str | None, typer.Option("--engine")] = None,
    engine_version: Annotated[str | None, typer.Option("--engine-version")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Use this id instead of a UUID.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Enqueue a run as the WES API would (state QUEUED) and print its run id.

    Example: wesctl runs add -u alice/wes/hello/3 -p '{"n": 3}' --provider sevenbridges
    """
    from wesctl.config import PROVIDER_NAMES
    from wesctl.services.runs import NewRun, add_run

    workflow_params = _json_option(params, "--params")
    tags = _json_option(tags_json, "--tags")
    if tags is not None and not isinstance(tags, dict):
        raise typer.BadParameter("--tags must be a JSON object")
    if tag:
        tags = {**(tags or {}), **_tag_pairs(tag)}
    if provider is not None and provider not in PROVIDER_NAMES:
        raise typer.BadParameter(
            f"unknown provider {provider!r}; known providers: {', '.join(PROVIDER_NAMES)}"
        )
    request = NewRun(
        workflow_url=workflow_url,
        workflow_type=workflow_type,
        workflow_type_version=workflow_type_version,
        workflow_params=workflow_params,
        tags=tags,
        workflow_engine=engine,
        workflow_engine_version=engine_version,
        provider=provider,
        run_id=run_id,
    )
    with cli_errors():
        runtime = _open(ctx, "runs-add")
        new_id = add_run(runtime, request)
    if as_json:
        from wesctl.render import print_json

        print_json({"run_id": new_id})
    else:
        typer.echo(new_id)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="Only runs in this state (repeatable)."),
    ] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Queued longer ago than e.g. 2h.")
    ] = None,
    newer_than: Annotated[
        str | None, typer.Option("--newer-than", help="Queued within e.g. 30m.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List runs, newest first.

    Example: wesctl runs list --state QUEUED --state RUNNING --older-than 1h
    """
    from wesctl.domain.states import parse_state
    from wesctl.services.runs import list_runs

    try:
        states = tuple(parse_state(value).value for value in state or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--state") from None
    with cli_errors():
        runtime = _open(ctx, "runs-list")
        summaries = list_runs(
            runtime,
            states=states,
            provider=provider.lower() if provider else None,
            older_than=_duration(older_than),
            newer_than=_duration(newer_than),
            limit=limit,
        )
    if as_json:
        from wesctl.render import print_json

        print_json([summary.to_json() for summary in summaries])
    else:
        from wesctl.render import runs_table

        runs_table(summaries)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The WES run id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show everything about one run: request, state, provider, outputs, task logs, history.

    Example: wesctl runs show 2f1c... --json
    """
    from wesctl.services.runs import show_run

    with cli_errors():
        runtime = _open(ctx, "runs-show")
        view = show_run(runtime, run_id)
    if as_json:
        from wesctl.render import print_json

        print_json(view.to_json())
    else:
        from wesctl.render import run_detail

        run_detail(view)


# --- config -----------------------------------------------------------------------------------


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the effective configuration, secrets redacted, and where each value came from.

    Example: wesctl --env-file /etc/wesctl/wesctl.env config show
    """
    with cli_errors():
        rows = _state(ctx).settings().display()
    if as_json:
        from wesctl.render import print_json

        print_json([{"name": n, "value": v, "source": s} for n, v, s in rows])
    else:
        from wesctl.render import key_value_table

        key_value_table(rows, ("SETTING", "VALUE", "SOURCE"))


def main() -> None:  # pragma: no cover - the console-script entry point
    app()
