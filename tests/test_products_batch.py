"""The batch job's joint products: per-ticker VaR / ES and quintile ranks in the forecast store, once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from test_batch_forecast import without_mlflow_env

from conftest import random_walk_bars
from forecaster import forecast_store, tracking
from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)
from forecaster.data import PriceStore
from forecaster.forecast_store import schema
from forecaster.model import FuzzyLSTMForecaster
from pipelines import batch_forecast

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
HORIZON = 3


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Six tickers of 260 sessions to 2010-12-31; NEW has 40, too few returns for the copula."""
    vols = np.linspace(0.005, 0.03, len(TICKERS))
    frames = [
        random_walk_bars(260, t, seed=i, vol=v) for i, (t, v) in enumerate(zip(TICKERS, vols, strict=True))
    ]
    new = random_walk_bars(260, "NEW", seed=7).tail(40)
    return pd.concat([*frames, new], ignore_index=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory, bars):
    home = tmp_path_factory.mktemp("batch-products")
    PriceStore(home / "prices").write(bars)
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=HORIZON),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu", fine_tune_epochs=0),
    )
    train = bars[bars["ticker"] != "NEW"]
    with pytest.MonkeyPatch.context() as mp:
        without_mlflow_env(mp)
        settings = Settings(home=home)
        tracking.log_training_run(FuzzyLSTMForecaster(config).fit(train, progress=False), train, settings)
        assert tracking.promote(settings, train).promoted
    return home


@pytest.fixture
def settings(home, store_url, monkeypatch) -> Settings:
    without_mlflow_env(monkeypatch)
    return Settings(home=home, universe=[*TICKERS, "NEW"], forecast_store_url=store_url)


def rows_of(engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]


def test_risk_and_ranks_are_stored_once_and_a_rerun_writes_nothing_new(settings, bars):
    engine = forecast_store.connect(settings.forecast_store_url)
    first = batch_forecast.run(settings, engine=engine)
    assert first.products_written == {"risk": 6 * HORIZON * 3, "ranks": 6 * HORIZON}
    assert "NEW" in first.forecast  # forecast, but left out of the joint products
    risk, ranks = rows_of(engine, forecast_store.risk), rows_of(engine, forecast_store.ranks)
    assert {r["ticker"] for r in risk} == {r["ticker"] for r in ranks} == set(TICKERS)
    assert {(r["as_of"], r["model_version"], r["paths"]) for r in risk} == {
        (dt.date(2010, 12, 31), "1", 10_000)
    }
    assert sorted({r["alpha"] for r in risk}) == [0.01, 0.025, 0.05] and all(
        r["es"] >= r["var"] for r in risk
    )
    assert all(sum(r[f"rank{k}"] for k in range(1, 6)) == pytest.approx(1.0) for r in ranks)
    assert {r["n_tickers"] for r in ranks} == {6}

    # The library gives the same numbers for the same tickers, horizon, paths and seed.
    champion = tracking.load_registered(settings).model
    per_ticker, _ = champion.risk(bars, tickers=TICKERS, horizon=2, alphas=(0.025,))
    stored = {r["ticker"]: r["var"] for r in risk if r["horizon"] == 2 and r["alpha"] == 0.025}
    assert [stored[t] for t in per_ticker["ticker"]] == pytest.approx(per_ticker["var"].tolist(), rel=1e-9)
    m6 = champion.rank(bars, tickers=TICKERS, horizon=HORIZON)
    fff = next(r for r in ranks if r["ticker"] == "FFF" and r["horizon"] == HORIZON)
    assert [fff[f"rank{k}"] for k in range(1, 6)] == pytest.approx(m6.set_index("ID").loc["FFF"].tolist())

    second = batch_forecast.run(settings, engine=engine)
    assert second.products_written == {"risk": 0, "ranks": 0} and second.rows_written == 0
    assert rows_of(engine, forecast_store.risk) == risk and rows_of(engine, forecast_store.ranks) == ranks
    counts = [r["counts"] for r in forecast_store.recent_runs(engine)]
    assert [(c["risk_rows_written"], c["rank_rows_written"]) for c in counts] == [(0, 0), (54, 18)]
    engine.dispose()


def test_non_finite_products_are_refused_before_the_database(settings):
    engine = forecast_store.connect(settings.forecast_store_url)
    row = {"ticker": "AAA", "as_of": dt.date(2010, 12, 31), "horizon": 1, "alpha": 0.01, "var": float("nan"),
           "es": 0.1, "paths": 10, "model_name": "m", "model_version": "1", "created_at": forecast_store.utcnow()}  # fmt: skip
    with pytest.raises(ValueError, match=r"AAA: risk.var is nan at horizon 1 as of 2010-12-31 \(row 0\)"):
        forecast_store.write_batch(engine, [], risk=[row])
    assert rows_of(engine, forecast_store.risk) == []
    assert forecast_store.write_batch(engine, [], risk=[{**row, "var": 0.05}]) == {
        "forecasts": 0,
        "risk": 1,
        "ranks": 0,
    }
    engine.dispose()


def test_upgrading_a_0003_store_adds_the_risk_and_ranks_tables(store_url):
    forecast_store.connect(store_url).dispose()
    engine = schema._create_engine(store_url)
    with schema._schema_lock(engine) as conn:
        schema._alembic("downgrade", conn, "0003")
    assert not sa.inspect(engine).has_table("risk")
    engine.dispose()
    assert forecast_store.upgrade(store_url) == ("0003", "0005")
    engine = forecast_store.connect(store_url)
    assert sa.inspect(engine).has_table("risk") and sa.inspect(engine).has_table("ranks")
    engine.dispose()
