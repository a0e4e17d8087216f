"""The WES API's side of the shared database, reproduced for tests: its DDL (Alembic revision
65510080a98b) and its way of inserting a run; plus `expire_claim`, which fast-forwards time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

API_REVISION = "65510080a98b"

API_DDL = (
    """CREATE TABLE workflow_runs (
        run_id VARCHAR(36) NOT NULL,
        state VARCHAR(20) NOT NULL,
        workflow_params JSON,
        workflow_type VARCHAR(50) NOT NULL,
        workflow_type_version VARCHAR(20) NOT NULL,
        workflow_engine VARCHAR(50),
        workflow_engine_version VARCHAR(20),
        workflow_url VARCHAR(500) NOT NULL,
        tags JSON,
        start_time TIMESTAMP WITHOUT TIME ZONE,
        end_time TIMESTAMP WITHOUT TIME ZONE,
        PRIMARY KEY (run_id)
    )""",
    """CREATE TABLE task_logs (
        id VARCHAR(36) NOT NULL,
        run_id VARCHAR(36),
        name VARCHAR(200) NOT NULL,
        cmd JSON,
        start_time TIMESTAMP WITHOUT TIME ZONE,
        end_time TIMESTAMP WITHOUT TIME ZONE,
        stdout VARCHAR(500),
        stderr VARCHAR(500),
        exit_code INTEGER,
        system_logs JSON,
        PRIMARY KEY (id),
        FOREIGN KEY(run_id) REFERENCES workflow_runs (run_id)
    )""",
    """CREATE TABLE alembic_version (
        version_num VARCHAR(32) NOT NULL,
        CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
    )""",
)


def create_api_schema(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in API_DDL:
            connection.execute(text(statement))
        connection.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": API_REVISION}
        )


def insert_api_run(
    engine: Engine,
    *,
    run_id: str | None = None,
    workflow_url: str = "alice/wes/hello/3",
    workflow_params: Any = None,
    tags: Any = None,
    state: str = "QUEUED",
    workflow_type: str = "CWL",
) -> str:
    """Insert a run exactly as the WES API's POST /runs does (tags JSON null when absent)."""
    run_id = run_id or str(uuid.uuid4())
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO workflow_runs (run_id, state, workflow_params, workflow_type, "
                "workflow_type_version, workflow_engine, workflow_engine_version, workflow_url, "
                "tags, start_time, end_time) VALUES (:run_id, :state, :params, :type, 'v1.0', "
                "NULL, NULL, :url, :tags, :start, NULL)"
            ),
            {
                "run_id": run_id,
                "state": state,
                "params": json.dumps(workflow_params if workflow_params is not None else {}),
                "type": workflow_type,
                "url": workflow_url,
                "tags": json.dumps(tags),
                "start": now,
            },
        )
    return run_id


def expire_claim(engine: Engine, run_id: str) -> None:
    """Make the run's submission lease run out now, instead of waiting WESCTL_CLAIM_TIMEOUT."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE workflow_runs SET claim_expires_at = :t WHERE run_id = :id"),
            {"t": datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1), "id": run_id},
        )
