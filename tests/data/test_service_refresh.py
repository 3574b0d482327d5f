"""The API's `{ticker}` path with source=yahoo: stale bars are refreshed through the real yfinance
code (recorded responses); when the source fails it answers from the cache, and says how old."""

from pathlib import Path

import pandas as pd
import pytest
import requests
from fastapi.testclient import TestClient

from conftest import bars_from_returns
from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.data import PriceStore
from forecaster.model import FuzzyLSTMForecaster
from service.main import create_app
from service.settings import ServiceSettings


@pytest.fixture
def service(tmp_path, yahoo):
    """A local model directory (no registry) and GS bars cached up to 2023-09-29."""
    import numpy as np

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
    settings = ServiceSettings(home=tmp_path / "home", source="yahoo", model_uri=str(model_dir))
    PriceStore(settings.price_dir).write(bars)
    with TestClient(create_app(settings)) as client:
        yield client, settings


YAHOO_FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"


def test_stale_bars_are_refreshed_from_the_source(service, yahoo):
    client, settings = service
    yahoo.charts["GS"] = (200, (YAHOO_FIXTURES / "chart-GS-1d-2023-10-02_2023-10-09.json").read_bytes())
    r = client.post("/v1/forecast", json={"ticker": "GS"})
    assert r.status_code == 200, r.text
    assert r.json()["as_of"] == "2023-10-09" and r.json()["last_price"] == pytest.approx(312.61, rel=1e-4)
    stored = PriceStore(settings.price_dir).read(["GS"])
    assert stored["date"].max() == pd.Timestamp("2023-10-09")


def test_source_down_answers_from_cache_and_says_how_old(service, yahoo):
    client, settings = service
    yahoo.charts["GS"] = (200, requests.exceptions.ReadTimeout("read timed out"))
    r = client.post("/v1/forecast", json={"ticker": "GS"})
    assert r.status_code == 200, r.text
    assert r.json()["as_of"] == "2023-09-29" and r.json()["stale"] is True


def test_no_cache_and_source_down_is_503_and_unknown_ticker_is_404(service, yahoo):
    client, _ = service
    yahoo.charts["MS"] = (200, requests.exceptions.ConnectTimeout("connect timed out"))
    r = client.post("/v1/forecast", json={"ticker": "MS"})
    assert r.status_code == 503 and "MS" in r.json()["detail"]
    r = client.post("/v1/forecast", json={"ticker": "NOSUCH"})  # Yahoo answers 404
    assert r.status_code == 404 and "NOSUCH" in r.json()["detail"]
