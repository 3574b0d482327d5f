"""The OpenAPI document is the contract: schemathesis with every check, against a real uvicorn."""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, settings
from test_service import registry, tiny_config_module, two_ticker_bars_module  # noqa: F401
from test_service_edges import uvicorn

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.config import SchemathesisConfig  # noqa: E402

KEY = "contract-test-key"
CONFIG = {
    "generation": {"mode": "all", "max-examples": 30},
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        # Statuses valid data may get. 422 is among them: the schema cannot say "high >= low",
        # "dates increase", "enough bars for the window" or "horizon within the served model's"
        # (documented on the fields); such bodies are schema-valid and rightly refused.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "422"]},
    },
}


@pytest.fixture(scope="module")
def contract_server(registry):  # noqa: F811
    # With a key configured, the security scheme in the document is enforced (ignored_auth checks it).
    with uvicorn(registry, FORECASTER_API_KEYS=KEY) as (url, _):
        yield url


def test_api_holds_its_openapi_contract_under_every_check(contract_server):
    """`st run --checks all` in Python: valid and invalid data for every operation, bounded in time."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(
        f"{contract_server}/openapi.json", config=SchemathesisConfig.from_dict(CONFIG)
    )
    failures, cases = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=30, deadline=2000, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                nonlocal cases
                cases += 1
                case.call_and_validate(base_url=contract_server, headers={"X-API-Key": KEY}, timeout=30)

            try:
                check()
            except Unsatisfiable:  # no parameters and no body: nothing invalid to send
                assert mode is GenerationMode.NEGATIVE and not operation.body and not operation.query
            except Exception as exc:  # every operation's first failure, then report them all
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    print(f"schemathesis: {cases} cases, {len(failures)} failing operations")
    assert failures == [], "\n\n".join(failures)
    assert cases > 100


def test_documented_examples_work_with_the_model(contract_server):
    doc = requests.get(f"{contract_server}/openapi.json", timeout=10).json()
    body = doc["components"]["schemas"]["ForecastRequest"]["examples"][1]
    assert "bars" in body and "closes" not in body
    r = requests.post(f"{contract_server}/v1/forecast", json=body, headers={"X-API-Key": KEY}, timeout=30)
    assert r.status_code == 200, r.text
    assert "422" in doc["components"]["schemas"]["ForecastRequest"]["properties"]["horizon"]["description"]
    for path, method in [("/v1/forecast", "post"), ("/v1/model", "get"), ("/v1/forecasts/{ticker}", "get")]:
        assert "401" in doc["paths"][path][method]["responses"]
    assert {"400", "408", "413", "422"} <= set(doc["paths"]["/v1/forecast"]["post"]["responses"])
