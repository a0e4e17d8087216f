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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wesctl import __version__
from wesctl.config import Settings, load_settings
from wesctl.errors import ConfigError, WesctlError
from wesctl.log import configure_logging

if TYPE_CHECKING:  # imported lazily at run time, so `--help` stays fast
    from wesctl.domain.outcomes import Report
    from wesctl.services.runtime import Runtime

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


# The one `--json` option every command that prints results has.
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _emit(as_json: bool, data: Callable[[], Any], draw: Callable[[ModuleType], None]) -> None:
    """Print a command's result: `data()` as JSON for scripts, else `draw(wesctl.render)` (the
    renderer is imported only here, so `--help` and JSON output never load rich)."""
    from wesctl import render

    if as_json:
        render.print_json(data())
    else:
        draw(render)


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
    as_json: JsonFlag = False,
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
    _emit(as_json, lambda: data, lambda render: render.db_status(data))
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
    as_json: JsonFlag = False,
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
    _emit(as_json, lambda: {"run_id": new_id}, lambda _: typer.echo(new_id))


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
    as_json: JsonFlag = False,
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
    _emit(
        as_json,
        lambda: [summary.to_json() for summary in summaries],
        lambda render: render.runs_table(summaries),
    )


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The WES run id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show everything about one run: request, state, provider, outputs, task logs, history.

    Example: wesctl runs show 2f1c... --json
    """
    from wesctl.services.runs import show_run

    with cli_errors():
        runtime = _open(ctx, "runs-show")
        view = show_run(runtime, run_id)
    _emit(as_json, view.to_json, lambda render: render.run_detail(view))


# --- lifecycle --------------------------------------------------------------------------------


def _require_providers(ctx: typer.Context) -> None:
    """Provider commands check every enabled provider's settings before any I/O."""
    with cli_errors():
        _state(ctx).settings().require_providers()


def _render_report(result: Report, as_json: bool) -> None:
    _emit(as_json, result.to_json, lambda render: render.report(result))


@contextlib.contextmanager
def _progress(label: str, total: int | None) -> Iterator[Any]:
    """A progress bar on an interactive stderr; a no-op callback otherwise (timers, pipes)."""
    import sys

    if not sys.stderr.isatty():
        yield lambda *_: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(item: Any = None) -> None:
            bar.advance(task, item if isinstance(item, int) else 1)

        yield advance


_METRICS_FILE = typer.Option(
    "--metrics-file",
    help="Write Prometheus textfile metrics here (default: $WESCTL_METRICS_DIR/wesctl_<cmd>.prom).",
)


@contextlib.contextmanager
def _job(ctx: typer.Context, command: str, metrics_file: Path | None) -> Iterator[Any]:
    """Run a timer-job command body and write its metrics with the exit code it ends with."""
    from wesctl.metrics import JobMetrics, default_path, write_job_metrics

    job = JobMetrics(command)
    code = 0
    try:
        yield job
    except typer.Exit as exc:
        code = exc.exit_code
        raise
    except BaseException:
        code = 1
        raise
    finally:
        path = metrics_file
        if path is None:
            try:
                directory = _state(ctx).settings().metrics_dir
            except ConfigError:
                directory = None
            path = default_path(directory, command) if directory else None
        if path is not None:
            write_job_metrics(path, job, code)


def _run_job(
    ctx: typer.Context,
    command: str,
    metrics_file: Path | None,
    as_json: bool,
    work: Callable[[Runtime], Report],
) -> None:
    """Run a timer-job command: open the runtime, let `work` act with it, print its report and
    exit with the report's code; the job's metrics are written with that code."""
    with _job(ctx, command, metrics_file) as job:
        _require_providers(ctx)
        with cli_errors():
            job.runtime = runtime = _open(ctx, command)
            job.report = result = work(runtime)
        _render_report(result, as_json)
        raise typer.Exit(result.exit_code)


@app.command("submit-queued")
def submit_queued_command(
    ctx: typer.Context,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Submit at most N runs.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only runs for this provider.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be submitted and why others wait.")
    ] = False,
    as_json: JsonFlag = False,
    metrics_file: Annotated[Path | None, _METRICS_FILE] = None,
) -> None:
    """Submit QUEUED runs to their providers, oldest first, within the concurrency cap.

    Safe to run from several processes and hosts at once: each run is claimed by exactly one.
    Off a terminal each run's line is printed as soon as the run is done and no run is kept in
    memory; a terminal's table shows at most 200 runs, notable ones (failures, re-queues) kept
    before routine submissions; --json prints one document with every run when the pass ends
    (it keeps them all until then).
    Exit 0 when all went well or there was nothing to do, 1 when some runs failed, 75 when the
    database or every provider call was unavailable.

    Example: wesctl submit-queued --limit 20
    """
    from wesctl.services import submit

    if dry_run:
        with cli_errors():
            runtime = _open(ctx, "submit-queued")
            result = submit.plan_submission(runtime, limit=limit, provider=provider)
        _render_report(result, as_json)
        raise typer.Exit(result.exit_code)

    def work(runtime: Runtime) -> Report:
        from wesctl import render

        report = render.streamed_report("submit-queued", as_json=as_json)
        with _progress("submitting", None) as advance:
            return submit.submit_queued(
                runtime, limit=limit, provider=provider, progress=advance, report=report
            )

    _run_job(ctx, "submit-queued", metrics_file, as_json, work)


@app.command("submit-one")
def submit_one_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The WES run id.")],
    as_json: JsonFlag = False,
    metrics_file: Annotated[Path | None, _METRICS_FILE] = None,
) -> None:
    """Submit one run (what a notification triggers); exit 0 if it was already submitted.

    Example: wesctl submit-one 2f1c6b7e-8d7e-4f6a-9a55-3b1f0c2d9e11
    """
    from wesctl.services import submit

    _run_job(
        ctx, "submit-one", metrics_file, as_json, lambda runtime: submit.submit_one(runtime, run_id)
    )


@app.command("sync-status")
def sync_status_command(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Only these runs (default: every run in flight).")
    ] = None,
    stale_after: Annotated[
        int | None,
        typer.Option(
            "--stale-after",
            min=0,
            help="Only runs not checked for SECONDS (check times are kept to the hour, so runs "
            "checked within the hour may be included).",
        ),
    ] = None,
    as_json: JsonFlag = False,
    metrics_file: Annotated[Path | None, _METRICS_FILE] = None,
) -> None:
    """Bring runs in flight up to date: state, provider status, outputs, task logs, history.

    Also sends pending cancellations, so the timers alone are enough.

    Example: wesctl sync-status --stale-after 600
    """
    from wesctl.services import sync

    def work(runtime: Runtime) -> Report:
        with _progress("syncing", None) as advance:
            return sync.sync_status(
                runtime,
                run_ids=run_ids or None,
                stale_after=timedelta(seconds=stale_after) if stale_after is not None else None,
                progress=advance,
            )

    _run_job(ctx, "sync-status", metrics_file, as_json, work)


@app.command("cancel")
def cancel_command(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Runs to cancel (default: every cancellation the WES API asked for)."),
    ] = None,
    as_json: JsonFlag = False,
    metrics_file: Annotated[Path | None, _METRICS_FILE] = None,
) -> None:
    """Cancel runs: at once in the database if not yet submitted, else at the provider.

    Without ids, processes CANCELING runs and runs the WES API set to CANCELED while their
    provider run is still active.

    Example: wesctl cancel 2f1c6b7e-8d7e-4f6a-9a55-3b1f0c2d9e11
    """
    from wesctl.services import cancel

    _run_job(
        ctx, "cancel", metrics_file, as_json, lambda runtime: cancel.cancel(runtime, run_ids or ())
    )


@app.command("retry")
def retry_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run in SYSTEM_ERROR.")],
) -> None:
    """Put a SYSTEM_ERROR run back in the queue (recorded in its history), never starting a
    second provider run: one its last submission left running is kept and adopted.

    Example: wesctl retry 2f1c6b7e-8d7e-4f6a-9a55-3b1f0c2d9e11
    """
    from wesctl.services.submit import retry_run

    with cli_errors():
        runtime = _open(ctx, "retry")
        done = retry_run(runtime, run_id)
    from wesctl.render import requeued

    requeued(run_id, done)


@app.command("status")
def status_command(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    watch: Annotated[
        float | None,
        typer.Option("--watch", min=0.5, help="Refresh in place every SECONDS until Ctrl-C."),
    ] = None,
) -> None:
    """One screen for an operator: runs by state and provider, queue age, in flight vs the cap,
    stuck runs, last submit and sync, failures in the last hour.

    Example: wesctl status --watch 5
    """
    import time

    from wesctl.services.status import overview

    with cli_errors():
        runtime = _open(ctx, "status")
        view = overview(runtime)
    if as_json or watch is None:
        _emit(as_json, view.to_json, lambda render: render.status(view))
        return
    from wesctl.render import status_display

    with status_display(view) as show:
        try:
            while True:
                time.sleep(watch)
                with cli_errors():
                    show(overview(runtime))
        except KeyboardInterrupt:
            pass


@app.command("doctor")
def doctor_command(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """Check configuration, database, schema, each provider's credentials and the notify
    endpoint; print the fix for each failure. Exit 0 only when every check passes.

    Example: wesctl --env-file /etc/wesctl/wesctl.env doctor
    """
    from wesctl.services.doctor import all_passed, run_checks

    results = run_checks(_state(ctx).settings)
    _emit(
        as_json,
        lambda: [result.to_json() for result in results],
        lambda render: render.checks_table(results),
    )
    raise typer.Exit(0 if all_passed(results) else 1)


# --- notifications ----------------------------------------------------------------------------


@app.command("serve-notify")
def serve_notify_command(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="HOST:PORT or a unix socket path; default: the socket systemd passes, else "
            "DAEMON_NOTIFICATION_HOST:DAEMON_NOTIFICATION_PORT.",
        ),
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option("--idle-exit", min=0, help="Exit after SECONDS without traffic (0: never)."),
    ] = None,
) -> None:
    """Serve the WES API's run notifications (socket-activated by systemd, or standalone).

    Answers 200 as soon as a notification is validated, then submits the run through the same
    claim as submit-one. Exits after WESCTL_NOTIFY_IDLE_EXIT idle seconds.

    Example: wesctl serve-notify --listen 127.0.0.1:5001 --idle-exit 0
    """
    from wesctl.notify.serve import serve

    _require_providers(ctx)
    with cli_errors():
        code = serve(_state(ctx).settings(), listen=listen, idle_exit=idle_exit)
    raise typer.Exit(code)


@app.command("notify")
def notify_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The WES run id to announce.")],
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait.")] = 2.0,
) -> None:
    """Send a run notification exactly as the WES API does (POST {"run_id": ...}).

    Exit 0 when the endpoint answered 200, 1 otherwise.

    Example: wesctl notify 2f1c6b7e-8d7e-4f6a-9a55-3b1f0c2d9e11
    """
    from wesctl.notify import send_notification

    with cli_errors():
        settings = _state(ctx).settings()
        result = send_notification(
            run_id,
            host=settings.notification_host,
            port=settings.notification_port,
            timeout=timeout,
            token=settings.notify_token.get() if settings.notify_token else None,
        )
    if result.ok:
        typer.echo(f"notified: {result.status} {result.body}")
    else:
        logger.error("notification failed: %s", result.error or f"HTTP {result.status}")
    raise typer.Exit(0 if result.ok else 1)


# --- systemd ----------------------------------------------------------------------------------

systemd_app = typer.Typer(
    help="Write the systemd units (timer intervals and socket address from the settings).",
    no_args_is_help=True,
)
app.add_typer(systemd_app, name="systemd")

_WESCTL_PATH = typer.Option(
    "--wesctl-path", help="The wesctl executable the units run (a venv outside /home and /root)."
)
_ENV_FILE_PATH = typer.Option("--unit-env-file", help="EnvironmentFile= of the units.")


@systemd_app.command("render")
def systemd_render(
    ctx: typer.Context,
    wesctl_path: Annotated[str, _WESCTL_PATH] = "/opt/wesctl/venv/bin/wesctl",
    unit_env_file: Annotated[str, _ENV_FILE_PATH] = "/etc/wesctl/wesctl.env",
) -> None:
    """Print every unit file, as `systemd install` would write them.

    Example: wesctl --env-file /etc/wesctl/wesctl.env systemd render
    """
    from wesctl.systemd import render_units

    with cli_errors():
        units = render_units(
            _state(ctx).settings(), wesctl_path=wesctl_path, env_file=unit_env_file
        )
    for path, text in units.items():
        typer.echo(f"# --- {path}")
        typer.echo(text)


@systemd_app.command("install")
def systemd_install(
    ctx: typer.Context,
    prefix: Annotated[Path, typer.Option("--prefix", help="Root to install under, e.g. /.")],
    wesctl_path: Annotated[str, _WESCTL_PATH] = "/opt/wesctl/venv/bin/wesctl",
    unit_env_file: Annotated[str, _ENV_FILE_PATH] = "/etc/wesctl/wesctl.env",
) -> None:
    """Write the unit files under PREFIX/etc/systemd/system; then run `systemctl daemon-reload`.

    Example: wesctl --env-file /etc/wesctl/wesctl.env systemd install --prefix /
    """
    from wesctl.systemd import install_units, render_units

    with cli_errors():
        units = render_units(
            _state(ctx).settings(), wesctl_path=wesctl_path, env_file=unit_env_file
        )
        written = install_units(units, prefix)
    for path in written:
        typer.echo(str(path))


# --- demo -------------------------------------------------------------------------------------


@app.command("demo")
def demo_command(
    database: Annotated[
        Path, typer.Option("--database", help="SQLite file to create (replaced if it exists).")
    ] = Path("wesctl-demo.db"),
) -> None:
    """Run the whole lifecycle against SIMULATED providers, on a fresh SQLite database.

    Starts simulated Seven Bridges, HealthOmics (and S3) and Arvados APIs on 127.0.0.1, enqueues
    runs as the WES API would, notifies, submits, syncs and cancels with the real code until
    every run is finished, then shows `wesctl status`. Needs no credentials; finishes within a
    minute.

    Example: wesctl demo
    """
    from wesctl.demo import DemoRun, final_overview, quiet_logs, run_demo
    from wesctl.render import demo_display, demo_summary

    runs: list[DemoRun] = []
    with cli_errors(), quiet_logs(), demo_display(runs) as (say, tick):
        result = run_demo(database, say=say, on_queued=runs.append, tick=tick)
    demo_summary(result, final_overview(result))
    raise typer.Exit(0 if result.ok else 1)


# --- config -----------------------------------------------------------------------------------


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """Print the effective configuration, secrets redacted, and where each value came from.

    Example: wesctl --env-file /etc/wesctl/wesctl.env config show
    """
    with cli_errors():
        rows = _state(ctx).settings().display()
    _emit(
        as_json,
        lambda: [{"name": n, "value": v, "source": s} for n, v, s in rows],
        lambda render: render.settings_table(rows),
    )


def main() -> None:  # pragma: no cover - the console-script entry point
    app()
