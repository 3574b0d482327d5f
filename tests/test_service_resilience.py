"""The API under bad input and outages: one bad request fails alone, dates are right or a clear
422, and the service starts and serves without the registry (real uvicorn, real mlflow server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import requests
from fastapi.testclient import TestClient
from servers import free_port, mlflow_server, stop
from test_service import (  # noqa: F401  (module fixtures: a SQLite registry with a champion)
    bars_body,
    make_settings,
    registry,
    sessions,
    tiny_config_module,
    two_ticker_bars_module,
)

from forecaster import tracking
from forecaster.config import Settings
from forecaster.features.windows import window_from_arrays
from forecaster.tracking.pyfunc import model_checksum
from service.forecasting import MicroBatcher
from service.main import create_app
from service.model_state import load


@pytest.fixture
def client(registry, monkeypatch):  # noqa: F811
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(make_settings(registry))) as c:
        yield c


def shifted_bars(bars, start: str | None, n: int = 40, end: str | None = None) -> list[dict]:
    """`n` valid bars of AAA re-dated to XNYS sessions from `start` (or up to `end`); to business
    days where the calendar ends (the API names the date it cannot reach)."""
    body = bars_body(bars, n=n)
    try:
        days = (
            sessions(start, n)
            if start
            else [d for d in sessions(np.datetime64(end) - 3 * n, 3 * n) if d <= end][-n:]
        )
    except ValueError:
        days = [str(day.date()) for day in pd.bdate_range(start, end, periods=n)]
    for row, day in zip(body, days, strict=True):
        row["date"] = day
    return body


# ---- item 3: far-future bars; item 5: bars before 1990 ------------------------------------------


def test_bars_past_the_calendar_get_422_naming_the_date(client, two_ticker_bars_module):  # noqa: F811
    r = client.post("/v1/forecast", json={"bars": shifted_bars(two_ticker_bars_module, "2261-10-01", 80)})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "bars"] and "2261-" in error["msg"] and "XNYS calendar" in error["msg"]


def test_far_future_bars_get_sessions_of_their_own_year(client, two_ticker_bars_module):  # noqa: F811
    # 5,000 bars from 2020 end in 2039; the calendar used to end a year after the process started.
    r = client.post("/v1/forecast", json={"bars": shifted_bars(two_ticker_bars_module, "2100-11-01")})
    assert r.status_code == 200, r.text
    assert r.json()["steps"][0]["target_date"] > r.json()["as_of"] > "2100-12-01"


def test_bars_before_1990_get_their_own_target_dates(client, two_ticker_bars_module):  # noqa: F811
    body = shifted_bars(two_ticker_bars_module, None, end="1985-02-15")  # ends on a Friday
    r = client.post("/v1/forecast", json={"bars": body, "horizon": 3})
    assert r.status_code == 200, r.text
    assert r.json()["as_of"] == "1985-02-15"
    # Not 1990-01-02...: the sessions after it (Monday 18 February 1985 was Washington's Birthday).
    assert [s["target_date"] for s in r.json()["steps"]] == ["1985-02-19", "1985-02-20", "1985-02-21"]


def test_one_bad_window_never_fails_the_others_batched_with_it(registry, two_ticker_bars_module):  # noqa: F811
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.configure(Settings(home=registry))
        loaded = load("models:/fcm-lstm@champion", "fcm-lstm")
    config = loaded.forecaster.config.window
    good = bars_body(two_ticker_bars_module)
    bad = shifted_bars(two_ticker_bars_module, "2261-11-20")  # passes window checks; no sessions after it

    def window(rows):
        arrays = {
            "date": np.array([r["date"] for r in rows], dtype="datetime64[D]"),
            **{k: np.array([float(r[k]) for r in rows]) for k in ("adj_close", "high", "low", "volume")},
        }
        return window_from_arrays("request", arrays, config)

    windows = [window(good), window(bad), window(good)]
    calls = []
    batcher = MicroBatcher(observe=calls.append)

    async def submit_all():
        return await asyncio.gather(
            *(batcher.forecast(loaded, w, 2, ("body", "bars")) for w in windows), return_exceptions=True
        )

    first, failed, third = asyncio.run(submit_all())
    assert len(calls) == 1  # one batch, then a per-window fallback inside it
    assert isinstance(first, dict) and isinstance(third, dict) and first["steps"] == third["steps"]
    assert isinstance(failed, ValueError) and "2261-" in str(failed)


# ---- item 12: extreme prices ---------------------------------------------------------------------


def test_prices_whose_forecast_cannot_be_finite_get_422_not_null_bounds(client, two_ticker_bars_module):  # noqa: F811
    body = bars_body(two_ticker_bars_module)
    for i, row in enumerate(body):
        price = 1e308 if i % 2 else 1e-308
        row.update(open=price, high=price, low=price, close=price, adj_close=price)
    r = client.post("/v1/forecast", json={"bars": body})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "bars"] and "not be finite" in error["msg"]
    # A normal request right after is unaffected.
    assert client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module)}).status_code == 200


# ---- item 1 and 11: the registry is down; credentials never show -----------------------------------


def serve_command(port: int, workers: int) -> list[str]:
    code = f"from service.main import serve; serve(port={port}, workers={workers})"
    return [sys.executable, "-c", code]


@contextlib.contextmanager
def api_process(home, log, workers=1, **env):
    """`service.main.serve` in a subprocess (its own session); yields (url, process)."""
    port = free_port()
    environment = {**os.environ, "FORECASTER_HOME": str(home), "FORECASTER_SOURCE": "cache"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    environment.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="3", **env)
    with open(log, "a") as out:
        proc = subprocess.Popen(
            serve_command(port, workers), env=environment, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


def wait_for(url: str, proc, log, timeout=120, status=200) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the API exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            r = requests.get(url, timeout=5)
            if r.status_code == status:
                return r
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered {status}:\n{log.read_text()[-3000:]}")


DEAD_REGISTRY_WITH_PASSWORD = "http://alice:s3cret-pw@127.0.0.1:{port}"


def test_a_restart_during_a_registry_outage_serves_the_cached_champion(registry, tmp_path):  # noqa: F811
    log = tmp_path / "api.log"
    # 1. The registry is up: the champion is loaded and copied to the serving cache.
    with api_process(registry, log) as (url, proc):
        ready = wait_for(f"{url}/readyz", proc, log).json()
        assert ready["source"] == "registry" and ready["registry"] == "ok"
    entry = registry / "serving-cache" / "fcm-lstm" / "1"
    assert (entry / "model" / "MLmodel").is_file()  # the registered files, with their recorded checksum
    assert json.loads((entry / "registry.json").read_text())["model_sha256"] == model_checksum(
        entry / "model"
    )
    assert json.loads((registry / "serving-cache" / "fcm-lstm" / "@champion.json").read_text()) == {
        "version": "1"
    }
    # 2. Restarted (2 workers) with the tracking server unreachable: it serves the cached copy.
    dead = DEAD_REGISTRY_WITH_PASSWORD.format(port=free_port())
    with api_process(registry, log, workers=2, MLFLOW_TRACKING_URI=dead) as (url, proc):
        ready = wait_for(f"{url}/readyz", proc, log).json()
        assert ready["source"] == "cache" and ready["registry"].startswith("unreachable")
        r = requests.post(f"{url}/v1/forecast", json={"ticker": "AAA", "horizon": 2}, timeout=30)
        assert r.status_code == 200 and r.json()["model"] == {
            "name": "fcm-lstm",
            "version": "1",
            "alias": "champion",
        }
        info = requests.get(f"{url}/v1/model", timeout=10).json()
        assert info["source"] == "cache" and info["registry"].startswith("unreachable")
        for text in (json.dumps(ready), json.dumps(info)):
            assert "s3cret-pw" not in text  # item 11: MLflow's error text carries the URI
        assert proc.poll() is None
    assert "s3cret-pw" not in log.read_text()


def test_no_registry_and_no_cache_stays_up_not_ready_then_recovers(registry, tmp_path):  # noqa: F811
    """Two workers, the tracking server down, nothing cached: not ready (never exit 0), then the
    real mlflow server comes up on that port and the background retry loads the champion."""
    home = tmp_path / "home"
    shutil.copytree(registry / "prices", home / "prices")
    port = free_port()
    log = tmp_path / "api.log"
    with api_process(home, log, workers=2, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
                     FORECASTER_REGISTRY_RETRY_S="1") as (url, proc):  # fmt: skip
        detail = wait_for(f"{url}/readyz", proc, log, status=503).json()["detail"]
        assert "registry unreachable" in detail and "no cached copy" in detail and "retrying" in detail
        assert requests.post(f"{url}/v1/forecast", json={"ticker": "AAA"}, timeout=10).status_code == 503
        time.sleep(3)
        assert proc.poll() is None  # uvicorn used to stop the parent, with rc 0 for --workers 2
        backend = f"sqlite:///{registry / 'mlflow.db'}"
        with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "mlflow.log", port=port):
            ready = wait_for(f"{url}/readyz", proc, log, timeout=120).json()
            assert ready["source"] == "registry" and ready["model_version"] == "1"
            r = requests.post(f"{url}/v1/forecast", json={"ticker": "AAA"}, timeout=30)
            assert r.status_code == 200, r.text


def test_serve_exits_non_zero_when_it_can_never_serve(tmp_path, registry):  # noqa: F811
    env = {**os.environ, "FORECASTER_HOME": str(tmp_path / "home")}
    # A path that is no model directory: stopped before any worker starts.
    env["FORECASTER_MODEL_URI"] = str(tmp_path / "no-such-model")
    done = subprocess.run(serve_command(free_port(), 2), env=env, capture_output=True, text=True, timeout=60)
    assert (
        done.returncode == 2 and "no-such-model" in done.stderr and "neither a model directory" in done.stderr
    )
    # A model directory that does not load: each worker fails its start; uvicorn alone exits 0 with 2 workers.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.configure(Settings(home=registry))
        broken = tracking.load_model("models:/fcm-lstm/1").save(tmp_path / "broken")
    (broken / "weights.pt").write_bytes(b"not a state dict")
    env["FORECASTER_MODEL_URI"] = str(broken)
    done = subprocess.run(serve_command(free_port(), 2), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]


def test_served_logs_are_json_lines_in_every_worker_access_log_included(tmp_path, registry):  # noqa: F811
    """FORECASTER_LOG_FORMAT=json reaches uvicorn's spawned workers: their start-up, the service's own
    lines and the access log come out as one JSON object per line."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.configure(Settings(home=registry))
        model_dir = tracking.load_model("models:/fcm-lstm/1").save(tmp_path / "model")
    home = tmp_path / "home"
    shutil.copytree(registry / "prices", home / "prices")
    log = tmp_path / "api.log"
    with api_process(home, log, workers=2, FORECASTER_MODEL_URI=str(model_dir),
                     FORECASTER_LOG_FORMAT="json") as (url, proc):  # fmt: skip
        wait_for(f"{url}/readyz", proc, log)
        assert requests.post(f"{url}/v1/forecast", json={"ticker": "AAA"}, timeout=30).status_code == 200
        time.sleep(0.5)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and {"time", "level", "logger", "message"} <= set(records[0])
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers and "uvicorn.access" in loggers, loggers
    assert any("POST /v1/forecast" in r["message"] for r in records if r["logger"] == "uvicorn.access")
    assert any(r["logger"].startswith("service") for r in records), loggers
    assert not [
        line for line in lines if line.startswith(("INFO:", "WARNING:", "ERROR:"))
    ]  # uvicorn's own format
