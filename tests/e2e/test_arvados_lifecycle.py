"""The lifecycle on Arvados through the real CLI: the SDK over https against SimulatedArvados,
configured only with the original daemon's variable names and SSL_CERT_FILE (the SDK's own
trust setting); XDG_CACHE_HOME keeps the SDK's discovery cache out of the developer's home."""

from __future__ import annotations

import json
from typing import Any

from tests.cli_helpers import wesctl
from tests.e2e.arvados_cluster import ArvadosCluster


def test_arvados_run_from_queue_to_complete_with_outputs_and_task_logs(
    arvados: ArvadosCluster,
) -> None:
    run_id = arvados.add_run()
    assert arvados.cli_json("submit-queued")["counts"] == {"submitted": 1}
    row = arvados.row(run_id)
    assert row.state == "INITIALIZING", "a committed request waiting for a node is never QUEUED"
    assert arvados.sim.runs_for(run_id) == [row.provider_id]
    assert arvados.sim.request(row.provider_id)["state"] == "Committed"
    assert arvados.cli_json("submit-queued")["counts"] == {}
    arvados.sim.set_container_state(row.provider_id, "Running")
    arvados.cli_json("sync-status")
    assert arvados.row(run_id).state == "RUNNING"
    arvados.sim.finish(row.provider_id, succeed=True)
    arvados.cli_json("sync-status")
    shown = arvados.cli_json("runs", "show", run_id)
    assert shown["state"] == "COMPLETE"
    output_uuid = arvados.sim.request(row.provider_id)["output_uuid"]
    assert output_uuid in json.dumps(shown["outputs"]), "outputs from cwl.output.json"
    logs = shown["task_logs"]
    assert len(logs) == 2, "the runner's and the workflow step's"
    assert all(log["stderr"] and log["stderr"].endswith("/stderr.txt") for log in logs)


def test_arvados_cancel_is_canceling_then_canceled_after_the_next_sync(
    arvados: ArvadosCluster,
) -> None:
    run_id = arvados.add_run()
    arvados.cli_json("submit-queued")
    provider_id = arvados.row(run_id).provider_id
    arvados.sim.set_container_state(provider_id, "Running")
    arvados.cli_json("sync-status")
    arvados.cli_json("cancel", run_id)
    assert arvados.row(run_id).state == "CANCELING"
    assert arvados.sim.request(provider_id)["priority"] == 0
    arvados.cli_json("sync-status")
    assert arvados.row(run_id).state == "CANCELED"
    assert arvados.sim.container_of(provider_id)["state"] == "Cancelled"


def doctor_checks(world: ArvadosCluster) -> dict[str, Any]:
    result = wesctl("doctor", "--json", env=world.env)
    return {item["check"]: item for item in json.loads(result.stdout)}


def test_doctor_checks_the_arvados_token_and_project(arvados: ArvadosCluster) -> None:
    checks = doctor_checks(arvados)
    assert checks["arvados token"]["result"] == "ok", checks["arvados token"]
    assert checks["arvados project"]["result"] == "ok", checks["arvados project"]
    assert arvados.sim.calls["users.current"] == 1
    assert arvados.sim.calls["groups.get"] == 1
    arvados.sim.reject_token(arvados.sim.token)
    checks = doctor_checks(arvados)
    assert checks["arvados token"]["result"] != "ok"
    assert "ARVADOS_API_TOKEN" in checks["arvados token"]["detail"]
    assert "arvados project" not in checks, "nothing is asked with a refused token"
    assert arvados.sim.token not in json.dumps(checks)
