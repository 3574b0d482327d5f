"""The prediction API: through TestClient where simpler, and through a real uvicorn server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from servers import free_port, wait_http

from conftest import mlflow_environment_restored
from forecaster import tracking
from forecaster.config import Settings
from forecaster.data import PriceStore
from forecaster.data.sessions import future_sessions
from forecaster.model import FuzzyLSTMForecaster
from service.main import create_app
from service.settings import ServiceSettings


@pytest.fixture(scope="module")
def registry(tmp_path_factory, two_ticker_bars_module, tiny_config_module):
    """A temp FORECASTER_HOME: SQLite registry with a champion, and the bars in the price store."""
    home = tmp_path_factory.mktemp("service") / "home"
    with mlflow_environment_restored(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        settings = Settings(home=home)
        model = FuzzyLSTMForecaster(tiny_config_module).fit(two_ticker_bars_module, progress=False)
        tracking.log_training_run(model, two_ticker_bars_module, settings)
        tracking.promote(settings, two_ticker_bars_module)
    PriceStore(settings.price_dir).write(two_ticker_bars_module)
    return home


@pytest.fixture(scope="module")
def two_ticker_bars_module():
    import pandas as pd

    from conftest import random_walk_bars

    return pd.concat(
        [random_walk_bars(300, "AAA", seed=1), random_walk_bars(300, "BBB", seed=2)], ignore_index=True
    )


@pytest.fixture(scope="module")
def tiny_config_module():
    from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig

    return ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu"),
    )


def make_settings(home, **overrides) -> ServiceSettings:
    return ServiceSettings(home=home, source="cache", reload_interval_s=0, **overrides)


@pytest.fixture
def client(registry, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(make_settings(registry))) as c:
        yield c


def sessions(first, n: int) -> list[str]:
    """`n` XNYS trading sessions from `first` on: the only days the API takes bars for."""
    return [str(day) for day in future_sessions(np.array([np.datetime64(first, "D") - 1]), n, "XNYS")[0]]


def bars_body(bars, n=40, changes=None):
    """The last `n` bars of AAA as a request's `bars`, dated on consecutive sessions (the synthetic
    frame's business days include exchange holidays)."""
    rows = bars[bars["ticker"] == "AAA"].tail(n)
    days = sessions(rows["date"].iloc[0].date(), len(rows))
    out = [
        {"date": day, "open": r.open, "high": r.high, "low": r.low, "close": r.close,
         "adj_close": r.adj_close, "volume": r.volume}
        for day, r in zip(days, rows.itertuples(), strict=True)
    ]  # fmt: skip
    for (i, field), value in (changes or {}).items():
        out[i][field] = value
    return out


def test_forecast_by_ticker_from_the_price_store(client, two_ticker_bars_module):
    r = client.post("/v1/forecast", json={"ticker": "AAA", "horizon": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ticker"] == "AAA" and body["as_of"] == str(two_ticker_bars_module["date"].max().date())
    assert body["stale"] is True  # synthetic bars end years ago
    assert [s["horizon"] for s in body["steps"]] == [1, 2, 3]
    assert body["model"] == {"name": "fcm-lstm", "version": "1", "alias": "champion"}
    assert sum(body["memberships"]) == pytest.approx(1.0)
    step = body["steps"][0]
    assert step["lower_95"] <= step["lower_80"] <= step["forecast"] <= step["upper_80"] <= step["upper_95"]
    assert len(step["experts"]) == 2 and step["target_date"] > body["as_of"]


def test_forecast_from_supplied_bars_matches_the_model(client, registry, two_ticker_bars_module):
    # Every bar: the volatility features read up to `history_needed` bars, as model.predict does.
    r = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module, n=300), "horizon": 2})
    assert r.status_code == 200, r.text
    model = tracking.load_model("models:/fcm-lstm/1")
    expected = model.predict(two_ticker_bars_module[two_ticker_bars_module["ticker"] == "AAA"])
    assert [s["forecast"] for s in r.json()["steps"]] == pytest.approx(
        expected["forecast"][:2].tolist(), rel=1e-6
    )


@pytest.mark.parametrize(
    "body, loc, message",
    [
        ({"ticker": "AAA", "horizon": 4}, ["body", "horizon"], "beyond this model's 3"),
        ({"ticker": "AAA", "horizon": 0}, ["body", "horizon"], "greater than or equal to 1"),
        ({"ticker": "../etc/passwd"}, ["body", "ticker"], "pattern"),
        ({"ticker": "AAA", "closes": [1.0, 2.0]}, ["body"], "exactly one of"),
        ({"closes": [1.0] * 20, "horizon": 2}, ["body", "closes"], "send `bars`"),
        ({"horizon": "soon", "ticker": "AAA"}, ["body", "horizon"], "valid integer"),
    ],
)
def test_bad_requests_get_422_naming_the_field(client, body, loc, message):
    r = client.post("/v1/forecast", json=body)
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == loc and message in error["msg"]


@pytest.mark.parametrize(
    "changes, loc, message",
    [
        ({(3, "high"): 0.5}, ["body", "bars", 3], "high 0.5 < low"),
        ({(4, "close"): -1.0}, ["body", "bars", 4, "close"], "greater than 0"),
        ({(5, "date"): "2011-01-01"}, ["body"], "bars[5].date 2011-01-01 is not after"),
    ],
)
def test_bad_bars_get_422_naming_bar_and_field(client, two_ticker_bars_module, changes, loc, message):
    r = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module, changes=changes)})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == loc and message in error["msg"]


def test_non_finite_prices_too_few_bars_and_oversize_bodies_are_rejected(client, two_ticker_bars_module):
    body = '{"bars": [{"date": "2020-01-02", "high": NaN, "low": 1, "close": 1}]}'
    r = client.post("/v1/forecast", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "bars", 0, "high"]
    r = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module, n=5), "horizon": 1})
    assert r.status_code == 422 and "needs at least 11" in r.json()["detail"][0]["msg"]
    r = client.post("/v1/forecast", content=b"x" * 3_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_unknown_ticker_is_404(client):
    r = client.post("/v1/forecast", json={"ticker": "ZZZZ"})
    assert r.status_code == 404 and "ZZZZ" in r.json()["detail"]


def test_batch_forecasts_known_tickers_in_one_call_and_lists_failures(client):
    r = client.post("/v1/forecast/batch", json={"tickers": ["AAA", "BBB", "NOPE"], "horizon": 2})
    assert r.status_code == 200
    body = r.json()
    assert [f["ticker"] for f in body["forecasts"]] == ["AAA", "BBB"]
    assert body["errors"] == [{"ticker": "NOPE", "status": 404, "detail": body["errors"][0]["detail"]}]


def test_model_info_health_and_metrics(client):
    info = client.get("/v1/model").json()
    assert info["version"] == "1" and info["n_clusters"] == 2 and info["registry"] == "ok"
    assert info["fingerprint"]["tickers"] == ["AAA", "BBB"] and "rmse" in info["validation_metrics"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/v1/forecast", json={"ticker": "AAA"})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/v1/forecast",status="200"}' in text
    assert (
        "model_inference_seconds_count" in text
        and 'model_info{alias="champion",name="fcm-lstm",version="1"} 1.0' in text
    )


def test_no_model_is_503_and_not_ready(registry, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(make_settings(registry, model_uri="models:/no-such-model@champion"))) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        r = c.post("/v1/forecast", json={"ticker": "AAA"})
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]


def test_api_keys_guard_everything_but_health_and_metrics(registry, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    keys_file = tmp_path / "keys"
    keys_file.write_text("# rotated monthly\nfrom-file\n")
    settings = make_settings(registry, api_keys="alpha,beta", api_keys_file=keys_file)
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/forecast", json={"ticker": "AAA"}).status_code == 401
        assert (
            c.post("/v1/forecast", json={"ticker": "AAA"}, headers={"X-API-Key": "wrong"}).status_code == 401
        )
        for key in ("alpha", "beta", "from-file"):
            assert (
                c.post("/v1/forecast", json={"ticker": "AAA"}, headers={"X-API-Key": key}).status_code == 200
            )
        assert c.get("/v1/model").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


def test_registry_unreachable_keeps_serving_and_says_so(client, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    mlflow.set_tracking_uri(dead)
    mlflow.set_registry_uri(dead)
    try:
        state = client.app.state.model
        assert state.check_once() is False
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    assert client.get("/v1/model").json()["registry"].startswith("unreachable")
    assert client.post("/v1/forecast", json={"ticker": "AAA"}).status_code == 200


@contextlib.contextmanager
def uvicorn_server(home, **env):
    port = free_port()
    environment = {**os.environ, "FORECASTER_HOME": str(home), "FORECASTER_SOURCE": "cache", **env}
    environment.pop("MLFLOW_TRACKING_URI", None)
    log = home.parent / f"uvicorn-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app", "--port", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout=120, log=log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_hot_reload_swaps_versions_without_failing_a_request(
    registry, tiny_config_module, two_ticker_bars_module
):
    with uvicorn_server(registry, FORECASTER_RELOAD_INTERVAL_S="0.5") as url:
        versions, failures, stop = [], [], threading.Event()

        def loop():
            with requests.Session() as session:
                while not stop.is_set():
                    r = session.post(f"{url}/v1/forecast", json={"ticker": "BBB", "horizon": 2}, timeout=30)
                    (versions if r.ok else failures).append(r.json()["model"]["version"] if r.ok else r.text)

        client_thread = threading.Thread(target=loop)
        client_thread.start()
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.delenv("MLFLOW_TRACKING_URI", raising=False)
                settings = Settings(home=registry)
                better = FuzzyLSTMForecaster(tiny_config_module).fit(two_ticker_bars_module, progress=False)
                logged = tracking.log_training_run(better, two_ticker_bars_module, settings)
                MlflowClient().set_registered_model_alias("fcm-lstm", "champion", logged.version)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (not versions or versions[-1] != logged.version):
                time.sleep(0.2)
        finally:
            stop.set()
            client_thread.join(timeout=30)
        assert failures == []
        assert versions[0] == "1" and versions[-1] == logged.version
        assert requests.get(f"{url}/v1/model", timeout=10).json()["version"] == logged.version


def test_stored_forecasts_come_from_the_forecast_store(client, registry):
    import datetime as dt

    from forecaster import forecast_store

    assert client.get("/v1/forecasts/AAA").status_code == 404
    engine = forecast_store.connect(make_settings(registry).forecast_store_url)
    as_of = dt.date(2011, 2, 1)
    rows = [
        {"ticker": "AAA", "as_of": as_of, "horizon": h, "target_date": as_of + dt.timedelta(days=h),
         "last_price": 100.0, "forecast": 100.0 + h, "lower_80": 99.0, "upper_80": 102.0 + h,
         "lower_95": 98.0, "upper_95": 103.0 + h, "model_name": "fcm-lstm", "model_version": "1",
         "run_id": "abc", "created_at": forecast_store.utcnow()}
        for h in (1, 2, 3)
    ]  # fmt: skip
    assert forecast_store.write_forecasts(engine, rows) == 3
    r = client.get("/v1/forecasts/aaa")
    assert r.status_code == 200
    assert [(row["horizon"], row["forecast"], row["as_of"]) for row in r.json()] == [
        (1, 101.0, "2011-02-01"), (2, 102.0, "2011-02-01"), (3, 103.0, "2011-02-01"),
    ]  # fmt: skip
    assert client.get("/v1/forecasts/..%2Fetc").status_code in (404, 422)


def test_micro_batcher_answers_concurrent_requests_with_one_model_call(registry, two_ticker_bars_module):
    import asyncio

    from service.forecasting import MicroBatcher, forecast_windows
    from service.model_state import load

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.configure(Settings(home=registry))
        loaded = load("models:/fcm-lstm@champion", "fcm-lstm")
    model = loaded.forecaster
    from forecaster.features.windows import make_windows

    windows = make_windows(two_ticker_bars_module, model.config.window)
    picks = [windows.subset(np.array([i])) for i in (0, 50, 100, 150, 200)]
    horizons = [1, 3, 2, 3, 1]
    calls = []
    batcher = MicroBatcher(observe=calls.append)

    async def submit_all():
        return await asyncio.gather(
            *(batcher.forecast(loaded, w, h) for w, h in zip(picks, horizons, strict=True))
        )

    together = asyncio.run(submit_all())
    assert len(calls) == 1  # five requests, one model call
    alone = [forecast_windows(loaded, w, h)[0] for w, h in zip(picks, horizons, strict=True)]
    # Same answers; a batched LSTM call may round in the last bits differently from batch 1.
    for got, expected in zip(together, alone, strict=True):
        assert [s["horizon"] for s in got["steps"]] == [s["horizon"] for s in expected["steps"]]
        assert got["memberships"] == pytest.approx(expected["memberships"], rel=1e-6)
        for a, b in zip(got["steps"], expected["steps"], strict=True):
            assert a["target_date"] == b["target_date"]
            assert a["forecast"] == pytest.approx(b["forecast"], rel=1e-6)
            assert a["upper_95"] == pytest.approx(b["upper_95"], rel=1e-6)
