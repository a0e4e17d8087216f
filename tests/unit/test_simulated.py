"""The simulators' shared interface: faults on an API operation or a logical one, `calls` by
API operation, provider errors as faults, and the route tables, over real HTTP(S)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from wesctl.simulated.arvados import DEFAULT_TOKEN as ARVADOS_TOKEN
from wesctl.simulated.arvados import SimulatedArvados
from wesctl.simulated.healthomics import SimulatedHealthOmics
from wesctl.simulated.http import ERROR, THROTTLE, Request, Response, Routes
from wesctl.simulated.sevenbridges import DEFAULT_TOKEN as SBG_TOKEN
from wesctl.simulated.sevenbridges import SimulatedSevenBridges


def _get(url: str, headers: dict[str, str], context: ssl.SSLContext | None = None) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


@pytest.fixture(scope="module")
def omics() -> Iterator[SimulatedHealthOmics]:
    with SimulatedHealthOmics() as service:
        yield service


@pytest.fixture(scope="module")
def arvados() -> Iterator[SimulatedArvados]:
    with SimulatedArvados() as service:
        yield service


@pytest.mark.parametrize("operation", ["ListWorkflows", "workflow", None])
def test_healthomics_faults_name_an_api_or_a_logical_operation(
    omics: SimulatedHealthOmics, operation: str | None
) -> None:
    omics.clear_faults()
    omics.inject(THROTTLE, operation)
    assert _get(omics.base_url + "/workflow", {}) == 429
    assert _get(omics.base_url + "/workflow", {}) == 200  # the fault fired once


def test_healthomics_fault_on_one_api_operation_spares_its_logical_siblings(
    omics: SimulatedHealthOmics,
) -> None:
    omics.clear_faults()
    omics.inject(THROTTLE, "GetWorkflow")
    assert _get(omics.base_url + "/workflow", {}) == 200  # ListWorkflows, also "workflow"
    assert _get(omics.base_url + "/workflow/1234567", {}) == 429


def test_healthomics_calls_count_api_operations(omics: SimulatedHealthOmics) -> None:
    omics.clear_faults()
    before = omics.calls.copy()
    _get(omics.base_url + "/workflow", {})
    _get(omics.base_url + "/workflow/1234567", {})
    assert omics.calls - before == {"ListWorkflows": 1, "GetWorkflow": 1}


def test_an_injected_provider_error_is_answered_as_healthomics_models_it(
    omics: SimulatedHealthOmics,
) -> None:
    omics.clear_faults()
    omics.inject(ERROR, "workflow", code="ServiceQuotaExceededException", message="quota")
    request = urllib.request.Request(omics.base_url + "/workflow")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 402
    assert info.value.headers["x-amzn-ErrorType"] == "ServiceQuotaExceededException"
    assert json.loads(info.value.read()) == {
        "__type": "ServiceQuotaExceededException",
        "message": "quota",
    }


@pytest.mark.parametrize("operation", ["container_requests.list", "status"])
def test_arvados_faults_name_an_api_or_a_logical_operation(
    arvados: SimulatedArvados, operation: str
) -> None:
    arvados.reset()
    context = ssl.create_default_context(cafile=arvados.ca_file)
    url = arvados.base_url + "/arvados/v1/container_requests"
    auth = {"Authorization": f"Bearer {ARVADOS_TOKEN}"}
    arvados.inject(THROTTLE, operation)
    assert _get(url, auth, context) == 429
    assert _get(url, auth, context) == 200
    assert arvados.calls["container_requests.list"] == 2


def test_simulators_share_token_bookkeeping() -> None:
    with SimulatedSevenBridges() as fake:
        url, auth = fake.api_url + "/user", {"X-SBG-Auth-Token": SBG_TOKEN}
        assert _get(url, auth) == 200
        fake.reject_token(SBG_TOKEN)
        assert _get(url, auth) == 401
        fake.reset()  # back to the first token
        assert _get(url, auth) == 200


def test_route_table_decodes_parameters_and_matches_whole_paths() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: Request, found: dict[str, str]) -> Response:
        seen.append(found)
        return Response(200)

    routes = Routes(
        [
            ("GET", "/apps/{app:[^/]+/[^/]+}", "app", handler),
            ("GET", r"/apps/{app:[^/]+/[^/]+}/{revision:\d+}", "app", handler),
            ("POST", "/tasks/{task_id}/actions/run", "submit", handler),
        ]
    )
    request: Any = None
    for method, path in (
        ("GET", "/apps/a/b"),
        ("GET", "/apps/a/b/3"),
        ("POST", "/tasks/x%2Fy/actions/run"),
    ):
        found = routes.find(method, path)
        assert found is not None
        found[1](request)
    assert seen == [{"app": "a/b"}, {"app": "a/b", "revision": "3"}, {"task_id": "x/y"}]
    assert routes.find("GET", "/apps/a/b/c/d") is None
    assert routes.find("GET", "/tasks/x/actions/run") is None  # the method is part of a route
