"""The WES API's side of the shared database, reproduced for tests: its DDL (Alembic revision
65510080a98b; on MariaDB as that revision creates it there) and its way of inserting a run; plus
`expire_claim`, which fast-forwards time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text

from wesctl.db.engine import is_mysql

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


# The same revision run by the API on MariaDB 10.11 (SHOW CREATE TABLE): JSON is LONGTEXT with a
# json_valid() CHECK in utf8mb4_bin, DATETIME has no fractional seconds, InnoDB and utf8mb4.
_MARIADB_JSON = (
    "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`{}`))"
)
MARIADB_API_DDL = (
    f"""CREATE TABLE `workflow_runs` (
        `run_id` varchar(36) NOT NULL,
        `state` varchar(20) NOT NULL,
        `workflow_params` {_MARIADB_JSON.format("workflow_params")},
        `workflow_type` varchar(50) NOT NULL,
        `workflow_type_version` varchar(20) NOT NULL,
        `workflow_engine` varchar(50) DEFAULT NULL,
        `workflow_engine_version` varchar(20) DEFAULT NULL,
        `workflow_url` varchar(500) NOT NULL,
        `tags` {_MARIADB_JSON.format("tags")},
        `start_time` datetime DEFAULT NULL,
        `end_time` datetime DEFAULT NULL,
        PRIMARY KEY (`run_id`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    f"""CREATE TABLE `task_logs` (
        `id` varchar(36) NOT NULL,
        `run_id` varchar(36) DEFAULT NULL,
        `name` varchar(200) NOT NULL,
        `cmd` {_MARIADB_JSON.format("cmd")},
        `start_time` datetime DEFAULT NULL,
        `end_time` datetime DEFAULT NULL,
        `stdout` varchar(500) DEFAULT NULL,
        `stderr` varchar(500) DEFAULT NULL,
        `exit_code` int(11) DEFAULT NULL,
        `system_logs` {_MARIADB_JSON.format("system_logs")},
        PRIMARY KEY (`id`),
        KEY `run_id` (`run_id`),
        CONSTRAINT `task_logs_ibfk_1` FOREIGN KEY (`run_id`) REFERENCES `workflow_runs` (`run_id`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE `alembic_version` (
        `version_num` varchar(32) NOT NULL,
        PRIMARY KEY (`version_num`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
)


def create_api_schema(engine: Engine) -> None:
    ddl = MARIADB_API_DDL if is_mysql(engine.dialect) else API_DDL
    with engine.begin() as connection:
        for statement in ddl:
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
    queued_at: datetime | None = None,
) -> str:
    """Insert a run exactly as the WES API's POST /runs does (tags JSON null when absent), queued
    now unless `queued_at` says when (MariaDB keeps whole seconds of it, as of the API's)."""
    run_id = run_id or str(uuid.uuid4())
    now = queued_at or datetime.now(UTC).replace(tzinfo=None)
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


def queue_api_runs(url: str, run_ids: Sequence[str], **fields: Any) -> list[str]:
    """Insert the runs `run_ids` as the WES API's POST /runs does (`insert_api_run`'s fields)."""
    engine = create_engine(url)
    try:
        return [insert_api_run(engine, run_id=run_id, **fields) for run_id in run_ids]
    finally:
        engine.dispose()


def expire_claim(engine: Engine, run_id: str) -> None:
    """Make the run's submission lease run out now, instead of waiting WESCTL_CLAIM_TIMEOUT."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE workflow_runs SET claim_expires_at = :t WHERE run_id = :id"),
            {"t": datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1), "id": run_id},
        )


def read_run(engine: Engine, run_id: str) -> Any:
    """The run's workflow_runs row as the database holds it (every column)."""
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM workflow_runs WHERE run_id = :id"), {"id": run_id}
        ).one()


def write_state(engine: Engine, run_id: str, state: str) -> None:
    """What the WES API does, e.g. POST /runs/{id}/cancel writes CANCELED directly."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE workflow_runs SET state = :s WHERE run_id = :id"),
            {"s": state, "id": run_id},
        )
