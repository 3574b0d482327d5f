"""The OpenAPI document is the contract: schemathesis with every check, against a real uvicorn."""

# ruff: noqa: F811  (pytest fixtures imported from test_service are arguments here)

from __future__ import annotations

import datetime as dt

import pytest
import requests
from hypothesis import HealthCheck, settings
from test_service import bars_body, registry, tiny_config_module, two_ticker_bars_module  # noqa: F401
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


def post(url: str, body=None, data: bytes | None = None, headers: dict | None = None) -> requests.Response:
    headers = {"X-API-Key": KEY, **(headers or {})}
    return requests.post(f"{url}/v1/forecast", json=body, data=data, headers=headers, timeout=30)


def only_error(r: requests.Response) -> dict:
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    return error


def test_exactly_one_of_ticker_bars_closes_is_in_the_document_and_enforced(contract_server):
    doc = requests.get(f"{contract_server}/openapi.json", timeout=10).json()
    one_of = doc["components"]["schemas"]["ForecastRequest"]["oneOf"]
    assert sorted(s["required"] for s in one_of) == [["bars"], ["closes"], ["ticker"]]
    for body, got in [({"ticker": "AAA", "closes": [1.0, 2.0]}, "ticker, closes"), ({}, "none")]:
        error = only_error(post(contract_server, body))
        assert (
            error["loc"] == ["body"]
            and f"give exactly one of ticker, bars, closes (got {got})" in error["msg"]
        )
    assert post(contract_server, {"ticker": "AAA", "bars": None, "closes": None}).status_code == 200


@pytest.mark.parametrize(
    "body, loc, message",
    [
        ({"ticker": "AAA", "horizon": True}, ["body", "horizon"], "valid integer"),
        ({"ticker": "AAA", "horizon": "2"}, ["body", "horizon"], "valid integer"),
        ({"ticker": "AAA", "levels": ["0.5"]}, ["body", "levels", 0], "valid number"),
        ({"ticker": "AAA", "levels": [0.5, True]}, ["body", "levels", 1], "valid number"),
        ({"tickers": ["AAA"], "horizon": True}, ["body", "horizon"], "valid integer"),
    ],
)
def test_numbers_must_be_json_numbers_not_booleans_or_strings(contract_server, body, loc, message):
    path = "/v1/forecast/batch" if "tickers" in body else "/v1/forecast"
    r = requests.post(f"{contract_server}{path}", json=body, headers={"X-API-Key": KEY}, timeout=30)
    error = only_error(r)
    assert error["loc"] == loc and message in error["msg"]


def test_prices_must_be_json_numbers_and_integral_numbers_stay_accepted(
    contract_server, two_ticker_bars_module
):
    bars = bars_body(two_ticker_bars_module)
    for value in ("101.5", True):
        changed = [dict(b) for b in bars]
        changed[7]["close"] = value
        error = only_error(post(contract_server, {"bars": changed}))
        assert error["loc"] == ["body", "bars", 7, "close"] and "valid number" in error["msg"]
    integral = [{**b, "volume": 1000, "high": round(b["high"]) + 1, "low": 1} for b in bars]
    r = post(contract_server, {"bars": integral, "horizon": 2.0, "levels": [0.5]})
    assert r.status_code == 200, r.text
    assert len(r.json()["steps"]) == 2


@pytest.mark.parametrize(
    "data, loc",
    [
        (b'{"ticker": "AAA", "horizon": 1, "horizon": 3}', ["body", "horizon"]),
        (b'{"ticker": "AAA", "ticker": "BBB"}', ["body", "ticker"]),
    ],
)
def test_a_repeated_key_is_422_naming_it(contract_server, data, loc):
    error = only_error(post(contract_server, data=data, headers={"content-type": "application/json"}))
    assert error["loc"] == loc and f"duplicate key {loc[-1]!r}" in error["msg"]


def test_a_repeated_key_in_a_bar_of_a_large_body_is_422_naming_bar_and_key(
    contract_server, two_ticker_bars_module
):
    import json

    bars = bars_body(two_ticker_bars_module, n=300)
    text = json.dumps({"bars": bars}, indent=8)  # past 64 KiB: parsed and validated in a thread
    assert len(text) > 64 * 1024
    first = text.index('"close"', text.index(bars[250]["date"]))
    text = text[:first] + '"close": 1.0, ' + text[first:]
    error = only_error(
        post(contract_server, data=text.encode(), headers={"content-type": "application/json"})
    )
    assert error["loc"] == ["body", "bars", 250, "close"] and "duplicate key 'close'" in error["msg"]


def test_bars_on_days_without_a_session_are_422_naming_bar_and_date(contract_server, two_ticker_bars_module):  # noqa: F811
    bars = bars_body(two_ticker_bars_module, n=60)
    days = [dt.date.fromisoformat(b["date"]) for b in bars]
    friday = next(i for i, d in enumerate(days[:-1]) if d.weekday() == 4 and days[i + 1].weekday() == 0)
    saturday = [dict(b) for b in bars]
    saturday[friday]["date"] = str(days[friday] + dt.timedelta(days=1))
    error = only_error(post(contract_server, {"bars": saturday}))
    assert error["loc"] == ["body", "bars", friday, "date"]
    assert (
        f"bars[{friday}].date {days[friday] + dt.timedelta(days=1)} (Saturday) is not a XNYS trading session"
        in error["msg"]
    )
    # A holiday: Presidents' Day 2011 between the sessions before and after it.
    holiday = [dict(b) for b in bars]
    tuesday = days.index(dt.date(2011, 2, 22))
    holiday[tuesday]["date"] = "2011-02-21"
    error = only_error(post(contract_server, {"bars": holiday}))
    assert (
        error["loc"] == ["body", "bars", tuesday, "date"]
        and "2011-02-21 (Monday) is not a XNYS" in error["msg"]
    )


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_a_body_without_a_json_content_type_is_415(contract_server, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = post(contract_server, data=b'{"ticker": "AAA"}', headers=headers)
    assert r.status_code == 415, r.text
    assert "Content-Type: application/json" in r.json()["detail"]


def test_a_level_is_named_as_given_not_rounded(contract_server):
    for path, body in (("/v1/forecast", {"ticker": "AAA"}), ("/v1/forecast/batch", {"tickers": ["AAA"]})):
        r = requests.post(
            f"{contract_server}{path}", json={**body, "levels": [0.5, 0.9999999999999999]},
            headers={"X-API-Key": KEY}, timeout=30,
        )  # fmt: skip
        error = only_error(r)
        assert error["loc"] == ["body", "levels", 1]
        assert error["msg"].startswith("level 0.9999999999999999 is beyond this model's quantiles")
