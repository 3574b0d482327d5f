"""The API's refresh from Yahoo when the source is slow or mid-session (recorded responses, no network):
one refresh per ticker in flight, a short wait then the cached answer, and no intraday bar stored."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import bars_from_returns
from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.data import PriceStore
from forecaster.model import FuzzyLSTMForecaster
from service import bars as bar_source
from service.main import create_app
from service.settings import ServiceSettings

YAHOO_FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"
GS_CHART = YAHOO_FIXTURES / "chart-GS-1d-2023-10-02_2023-10-09.json"


@pytest.fixture
def make_client(tmp_path, yahoo):
    """make_client(**settings) -> TestClient over a local model and GS bars cached up to 2023-09-29."""
    returns = np.random.default_rng(0).normal(0, 0.01, 299)
    bars = bars_from_returns(returns, "GS", start="2022-10-10", price=300.0)
    bars = bars[bars["date"] <= "2023-09-29"]
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    model_dir = FuzzyLSTMForecaster(config).fit(bars, progress=False).save(tmp_path / "model")
    clients = []

    def make(**overrides):
        settings = ServiceSettings(
            home=tmp_path / "home", source="yahoo", model_uri=str(model_dir), **overrides
        )
        PriceStore(settings.price_dir).write(bars)
        client = TestClient(create_app(settings))
        clients.append(client.__enter__())
        return client, settings

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_a_slow_source_costs_one_short_wait_and_one_download(make_client, yahoo, monkeypatch):
    client, settings = make_client(refresh_timeout_s=0.5)
    yahoo.charts["GS"] = (200, GS_CHART.read_bytes())
    release, chart_calls = threading.Event(), []
    send = yahoo.send

    def slow_send(request, **kwargs):  # Yahoo hangs on the chart until released
        if "/v8/finance/chart/GS" in request.url:
            chart_calls.append(time.monotonic())
            release.wait(30)
        return send(request, **kwargs)

    monkeypatch.setattr(yahoo, "send", slow_send)
    try:
        start = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: client.post("/v1/forecast", json={"ticker": "GS"}), range(6)))
        elapsed = time.monotonic() - start
        assert [r.status_code for r in answers] == [200] * 6
        assert {(r.json()["as_of"], r.json()["stale"]) for r in answers} == {("2023-09-29", True)}
        assert elapsed < 5  # was: each request waited for the source (up to 30 s)
        assert len(chart_calls) == 1  # one refresh in flight for all six requests
    finally:
        release.set()
    # The refresh went on in the background and stored what it got.
    deadline = time.monotonic() + 20
    while PriceStore(settings.price_dir).read(["GS"])["date"].max() < pd.Timestamp("2023-10-09"):
        assert time.monotonic() < deadline, "the background refresh never stored its bars"
        time.sleep(0.1)
    assert client.post("/v1/forecast", json={"ticker": "GS"}).json()["as_of"] == "2023-10-09"


def test_after_a_failed_refresh_the_cache_serves_without_retrying_at_once(make_client, yahoo):
    import requests

    client, _ = make_client(refresh_retry_s=60)
    yahoo.charts["GS"] = (200, requests.exceptions.ConnectTimeout("connect timed out"))
    for _ in range(3):
        r = client.post("/v1/forecast", json={"ticker": "GS"})
        assert r.status_code == 200 and r.json()["stale"] is True
    assert len(yahoo.chart_requests("GS")) == 1


@pytest.mark.parametrize(
    "now, stored_through",
    [
        (datetime(2023, 10, 9, 18, 0, tzinfo=UTC), "2023-10-06"),  # 14:00 New York: the 9th is intraday
        (datetime(2023, 10, 9, 20, 30, tzinfo=UTC), "2023-10-09"),  # after the 16:00 close
    ],
)
def test_only_closed_sessions_are_stored(make_client, yahoo, monkeypatch, now, stored_through):
    monkeypatch.setattr(bar_source, "utcnow", lambda: now)
    client, settings = make_client()
    yahoo.charts["GS"] = (200, GS_CHART.read_bytes())  # its last bar is 2023-10-09
    r = client.post("/v1/forecast", json={"ticker": "GS"})
    assert r.status_code == 200, r.text
    assert r.json()["as_of"] == stored_through
    assert PriceStore(settings.price_dir).read(["GS"])["date"].max() == pd.Timestamp(stored_through)
