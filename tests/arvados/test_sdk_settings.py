"""The SDK's own settings stay the SDK's (settings.conf, ARVADOS_API_HOST_INSECURE) and give
host and token only where wesctl's sources leave them unset; wesctl's Arvados settings, secrets
in secret_mounts, gone collections, and the simulator's paging and clock script as the SDK's own
helpers see them."""

from __future__ import annotations

import json
from pathlib import Path

import arvados
import arvados.util
import pytest

from tests.contract.arvados_fixtures import arvados_settings, make_provider, run_spec
from wesctl.config import Settings, load_settings
from wesctl.errors import ConfigError
from wesctl.providers.arvados.adapter import build
from wesctl.providers.arvados.settings import SPEC as ARVADOS
from wesctl.simulated.arvados import (
    DEFAULT_PROJECT,
    DEFAULT_TOKEN,
    HELLO_DEFINITION,
    SimulatedArvados,
)
from wesctl.simulated.http import SimulatedClock

SECRET_WORKFLOW = "zzzzz-7fd4e-000000000000002"


def _empty(tmp_path: Path) -> Path:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return env_file


def _settings(tmp_path: Path, **environ: str) -> Settings:
    return load_settings(environ=environ, env_file=_empty(tmp_path), export_sdk=False)


def test_settings_conf_configures_the_sdk_and_wesctls_host_and_token_win_over_it(
    sim: SimulatedArvados, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """settings.conf still configures the SDK (here: TLS verification off); host and token set
    in wesctl's sources win over the file's, as ARVADOS_* variables do in the SDK."""
    monkeypatch.delenv("SSL_CERT_FILE")  # the simulator's CA is not trusted now
    conf = tmp_path / "config" / "arvados" / "settings.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        "ARVADOS_API_HOST=192.0.2.1:9\nARVADOS_API_TOKEN=not-this-one\n"
        "ARVADOS_API_HOST_INSECURE=true\n"
    )
    arvados.config.initialize()
    provider = make_provider(sim)
    try:
        assert [result.ok for result in provider.probe()] == [True, True]
    finally:
        provider.close()
    monkeypatch.setenv("ARVADOS_PROJECT_UUID", DEFAULT_PROJECT)
    from_file = load_settings(env_file=_empty(tmp_path), export_sdk=False)  # os.environ
    own = from_file.provider(ARVADOS)
    assert own.api_host == "192.0.2.1:9"
    assert own.api_token is not None
    assert own.api_token.get() == "not-this-one"
    assert from_file.sources["arvados_api_host"] == f"SDK settings {conf}"
    monkeypatch.setenv("ARVADOS_API_HOST", sim.host)
    mixed = load_settings(env_file=_empty(tmp_path), export_sdk=False)
    assert mixed.provider(ARVADOS).api_host == sim.host
    assert mixed.sources["arvados_api_host"] == "environment"
    assert mixed.sources["arvados_api_token"] == f"SDK settings {conf}"


def test_insecure_is_the_sdks_own_setting(
    sim: SimulatedArvados, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")  # the simulator's CA is not trusted now
    monkeypatch.setenv("ARVADOS_API_HOST_INSECURE", "true")
    arvados.config.initialize()
    provider = make_provider(sim)
    try:
        assert provider.statuses(["zzzzz-xvhdp-000000000000999"]) == {
            "zzzzz-xvhdp-000000000000999": None
        }
    finally:
        provider.close()


def test_missing_host_token_or_project_is_a_config_error(
    sim: SimulatedArvados, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    assert "arvados" not in settings.enabled_providers
    with pytest.raises(ConfigError) as info:
        build(settings)
    text = str(info.value)
    for name in ("ARVADOS_API_HOST", "ARVADOS_API_TOKEN", "ARVADOS_PROJECT_UUID"):
        assert name in text


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"ARVADOS_API_HOST": "https://zzzzz.example.com"}, "without a scheme"),
        ({"ARVADOS_PROJECT_UUID": "my project"}, "must be a project uuid"),
        ({"WESCTL_ARVADOS_RATE": "0"}, "positive number"),
    ],
)
def test_settings_problems_are_reported(
    values: dict[str, str], problem: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=problem):
        _settings(tmp_path, **values)


def test_settings_are_configured_with_host_token_and_project(tmp_path: Path) -> None:
    settings = arvados_settings("zzzzz.example.com", "v2/x/y")
    own = settings.provider(ARVADOS)
    assert "arvados" in settings.enabled_providers
    assert own.api_token is not None
    assert own.api_token.get() == "v2/x/y"
    assert "v2/x/y" not in repr(own)
    without_token = _settings(
        tmp_path, ARVADOS_API_HOST="zzzzz.example.com", ARVADOS_PROJECT_UUID=DEFAULT_PROJECT
    )
    assert "arvados" not in without_token.enabled_providers


def test_secret_inputs_go_to_secret_mounts_and_never_into_the_request(
    sim: SimulatedArvados,
) -> None:
    definition = json.loads(json.dumps(HELLO_DEFINITION))
    definition["$graph"][0]["hints"] = [
        {"class": "http://commonwl.org/cwltool#Secrets", "secrets": ["#main/password"]}
    ]
    sim.add_workflow(SECRET_WORKFLOW, "with a secret", definition)
    provider = make_provider(sim)
    try:
        spec = run_spec(
            "run-secret",
            workflow_url=SECRET_WORKFLOW,
            workflow_params={"message": "hi", "password": "s3cr3t"},
        )
        result = provider.submit(
            spec,
            idempotency_key="k",
            known_provider_id=None,
            may_exist=False,
            record_provider_id=lambda uuid: None,
        )
    finally:
        provider.close()
    request = sim.request(result.provider_id)
    assert "s3cr3t" not in json.dumps(request)
    inputs = request["mounts"]["/var/lib/cwl/cwl.input.json"]["content"]
    assert inputs == {"message": "hi", "password": {"$include": "/secrets/s0"}}
    assert sim.secret_mounts(result.provider_id) == {
        "/secrets/s0": {"kind": "text", "content": "s3cr3t"}
    }


def test_a_trashed_output_collection_reads_as_no_outputs(sim: SimulatedArvados) -> None:
    provider = make_provider(sim)
    try:
        pid = provider.submit(
            run_spec("run-trash"),
            idempotency_key="k",
            known_provider_id=None,
            may_exist=False,
            record_provider_id=lambda uuid: None,
        ).provider_id
        sim.finish(pid, succeed=True)
        sim.trash_collection(sim.request(pid)["output_uuid"])
        details = provider.details(pid)
    finally:
        provider.close()
    assert details.outputs == {}
    assert details.task_logs[0].stderr is not None


def test_keyset_paging_of_the_sdk_sees_every_item_once(sim: SimulatedArvados) -> None:
    uuids = {sim.add_committed_request({"wes_run_id": f"p{i}"}) for i in range(2500)}
    api = arvados.api("v1", host=sim.host, token=DEFAULT_TOKEN, num_retries=0)
    seen = [
        item["uuid"]
        for item in arvados.util.keyset_list_all(
            api.container_requests().list,
            filters=[["properties.wes_run_id", "like", "p%"]],
            select=["uuid"],
        )
    ]
    api.close_connections()
    assert len(seen) == len(set(seen)) == 2500
    assert set(seen) == uuids
    assert sim.calls["container_requests.list"] >= 3  # 1000 per page at most


def test_clock_script_moves_containers_for_the_demo_and_benchmarks() -> None:
    clock = SimulatedClock()
    with SimulatedArvados(
        script=(("Locked", 1), ("Running", 2), ("Complete", 5)), clock=clock
    ) as sim:
        pid = sim.add_committed_request({"wes_run_id": "scripted"})
        assert sim.container_of(pid)["state"] == "Queued"
        clock.advance(2.5)
        assert sim.container_of(pid)["state"] == "Running"
        clock.advance(3)
        assert sim.request(pid)["state"] == "Final"
        assert sim.container_of(pid)["exit_code"] == 0
