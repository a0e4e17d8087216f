"""Prometheus metrics for timer jobs, in node_exporter's textfile-collector format.

Each command writes one file (default `$WESCTL_METRICS_DIR/wesctl_<command>.prom`) atomically
(prometheus_client writes a temporary file and renames it) and makes it world-readable, since the
units run with UMask=0077 and node_exporter runs as another user. Every series carries a
`command` label so files of different commands never collide. Values are gauges describing the
last invocation; the last success time survives failed runs because it is read back from the
previous file.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wesctl.domain.outcomes import Outcome

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

    from wesctl.domain.outcomes import Report
    from wesctl.services.runtime import Runtime

logger = logging.getLogger(__name__)

LAST_SUCCESS = "wesctl_last_success_timestamp_seconds"


@dataclass
class JobMetrics:
    """What one invocation did, filled in as it goes."""

    command: str
    started: float = field(default_factory=time.time)
    report: Report | None = None
    runtime: Runtime | None = None


def default_path(directory: str, command: str) -> Path:
    return Path(directory) / f"wesctl_{command.replace('-', '_')}.prom"


def _previous_success(path: Path, command: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and sample.labels.get("command") == command:
                    return float(sample.value)
    except ValueError:
        logger.warning("ignoring unparsable metrics file %s", path)
    return None


def write_job_metrics(path: Path, job: JobMetrics, exit_code: int) -> None:
    """Write the metrics of `job` to `path`; never raises (metrics must not fail a job)."""
    try:
        _write(path, job, exit_code)
    except Exception as exc:  # noqa: BLE001 - a metrics problem is logged, the job's result stands
        logger.warning("could not write metrics to %s: %s", path, exc)


def _gauge(registry: CollectorRegistry, name: str, text: str, *labels: str) -> Gauge:
    from prometheus_client import Gauge

    return Gauge(name, text, ("command", *labels), registry=registry)


def _write(path: Path, job: JobMetrics, exit_code: int) -> None:
    from prometheus_client import CollectorRegistry, write_to_textfile

    now = time.time()
    registry = CollectorRegistry()
    command = job.command

    _gauge(registry, "wesctl_last_run_timestamp_seconds", "When the command last ran").labels(
        command
    ).set(now)
    success = now if exit_code == 0 else _previous_success(path, command)
    if success is not None:
        _gauge(registry, LAST_SUCCESS, "When the command last finished with exit code 0").labels(
            command
        ).set(success)
    _gauge(registry, "wesctl_duration_seconds", "How long the last run took").labels(command).set(
        now - job.started
    )
    _gauge(registry, "wesctl_last_exit_code", "Exit code of the last run").labels(command).set(
        exit_code
    )
    if job.report is not None:
        _report_metrics(registry, command, job.report)
    if job.runtime is not None:
        calls = _gauge(
            registry,
            "wesctl_provider_api_calls",
            "Provider API requests of the last run",
            "provider",
        )
        for name, count in job.runtime.provider_calls().items():
            calls.labels(command, name).set(count)
        _queue_metrics(registry, command, job.runtime)

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    os.chmod(path, 0o644)  # node_exporter runs as another user; units use UMask=0077


def _report_metrics(registry: CollectorRegistry, command: str, report: Report) -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    synced: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    error_kinds = {
        Outcome.REQUEUED: "transient",
        Outcome.FAILED: "permanent",
        Outcome.BLOCKED: "installation",
    }
    for item in report.outcomes:  # sync lists every UPDATED run
        if item.outcome == Outcome.UPDATED and item.reason:
            synced[(item.provider or "none", item.reason)] += 1
    for (provider, outcome), count in report.added.items():
        outcomes[(provider, outcome.value)] += count
        if outcome in error_kinds:
            errors[(provider, error_kinds[outcome])] += count
    for (provider, outcome), count in report.tallies.items():
        outcomes[(provider, outcome.value)] += count
    for name, text, label, counts in (
        ("wesctl_runs", "Runs handled by the last run, by outcome", "outcome", outcomes),
        ("wesctl_runs_synced", "Runs whose state changed, by new state", "state", synced),
        ("wesctl_provider_errors", "Runs hit by provider errors, by kind", "kind", errors),
    ):
        gauge = _gauge(registry, name, text, "provider", label)
        for (provider, value), count in counts.items():
            gauge.labels(command, provider, value).set(count)


def _queue_metrics(registry: CollectorRegistry, command: str, runtime: Runtime) -> None:
    from wesctl.db import runs as run_queries
    from wesctl.db.engine import database_errors, utcnow
    from wesctl.errors import WesctlError

    try:
        with database_errors(), runtime.readers() as session:
            stats = run_queries.queue_stats(
                session, utcnow(), stuck_after=runtime.settings.stuck_after
            )
    except WesctlError as exc:
        logger.warning("queue metrics skipped: %s", exc)
        return
    _gauge(registry, "wesctl_queue_depth", "QUEUED runs not yet at a provider").labels(command).set(
        stats.queued
    )
    _gauge(
        registry, "wesctl_oldest_queued_age_seconds", "Age of the oldest QUEUED run (0 if none)"
    ).labels(command).set(stats.oldest_queued_age)
    in_flight = _gauge(
        registry, "wesctl_runs_in_flight", "Runs at providers and not finished", "provider"
    )
    for provider, count in stats.in_flight.items():
        in_flight.labels(command, provider).set(count)
    stuck = _gauge(
        registry,
        "wesctl_runs_stuck",
        "Runs in flight with no provider progress for WESCTL_STUCK_AFTER",
        "provider",
    )
    for provider, count in stats.stuck.items():
        stuck.labels(command, provider).set(count)
