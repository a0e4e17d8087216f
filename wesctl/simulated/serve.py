"""Run one simulated provider in its own process, as a real provider runs on other machines.

    python -m wesctl.simulated.serve sevenbridges --tls --latency 0.02

prints one line of JSON (`url`, the value for the provider's endpoint setting, `ca_file` with
--tls, and `environment`: the variables that point wesctl and the client library at it), then
serves until stdin reaches its end or the process is interrupted. Each line read from stdin is
answered with one line of JSON: `stats()` of the caller of `serve()`, else the requests per
logical operation. Benchmarks use `serve()` with their own counting simulators.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

from wesctl.simulated.http import SimulatedService

PROVIDERS = ("sevenbridges", "healthomics", "arvados")
# The variable through which each client library trusts a private CA.
CA_VARIABLE = {
    "sevenbridges": "REQUESTS_CA_BUNDLE",
    "healthomics": "AWS_CA_BUNDLE",
    "arvados": "SSL_CERT_FILE",
}


def simulator(provider: str, latency: float) -> SimulatedService:
    """A fresh simulator of `provider` with its default accounts, `latency` seconds per call."""
    if provider == "sevenbridges":
        from wesctl.simulated.sevenbridges import SimulatedSevenBridges

        return SimulatedSevenBridges(latency=latency)
    if provider == "healthomics":
        from wesctl.simulated.healthomics import SimulatedHealthOmics

        return SimulatedHealthOmics(latency=latency)
    from wesctl.simulated.arvados import SimulatedArvados

    return SimulatedArvados(latency=latency)


def endpoint(provider: str, service: SimulatedService) -> dict[str, str]:
    """The variables that point wesctl (and, for a CA, the client library) at `service`."""
    url = service.base_url
    if provider == "sevenbridges":
        from wesctl.simulated import sevenbridges

        environment = {
            "SEVENBRIDGES_API_ENDPOINT": url + sevenbridges.API_PREFIX,
            "SEVENBRIDGES_API_TOKEN": sevenbridges.DEFAULT_TOKEN,
            "SEVENBRIDGES_PROJECT": sevenbridges.DEFAULT_PROJECT,
        }
    elif provider == "healthomics":
        environment = {
            "AWS_ENDPOINT_URL_OMICS": url,
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "AWS_ACCESS_KEY_ID": "simulated",
            "AWS_SECRET_ACCESS_KEY": "simulated",
            "AWS_REGION": "us-east-1",
            "AWS_HEALTHOMICS_WORKFLOW_ROLE_ARN": "arn:aws:iam::123456789012:role/omics-runs",
            "AWS_HEALTHOMICS_OUTPUT_URI": "s3://simulated-bucket/out",
        }
    else:
        from wesctl.simulated import arvados

        environment = {
            "ARVADOS_API_HOST": url.removeprefix("https://"),
            "ARVADOS_API_TOKEN": arvados.DEFAULT_TOKEN,
            "ARVADOS_PROJECT_UUID": arvados.DEFAULT_PROJECT,
        }
    if service.certificates is not None:
        environment[CA_VARIABLE[provider]] = service.ca_file
    return environment


def serve(
    provider: str,
    service: SimulatedService,
    *,
    tls: bool,
    stats: Callable[[], Any] | None = None,
) -> None:
    """Start `service`, print where it listens, answer stdin lines with stats until EOF."""
    service.start(tls=tls)
    print(
        json.dumps(
            {
                "url": service.base_url,
                "ca_file": service.ca_file if tls else None,
                "environment": endpoint(provider, service),
            }
        ),
        flush=True,
    )
    try:
        for _ in sys.stdin:
            answer = stats() if stats is not None else dict(service.calls)
            print(json.dumps(answer), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            service.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m wesctl.simulated.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("provider", choices=PROVIDERS)
    parser.add_argument("--tls", action="store_true", help="serve https with a private CA")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API call")
    options = parser.parse_args(argv)
    tls = options.tls or options.provider == "arvados"  # the Arvados SDK speaks only https
    serve(options.provider, simulator(options.provider, options.latency), tls=tls)


if __name__ == "__main__":
    main()
