"""The ACI state of the batch job: learnt from stored forecasts once their outcomes are known,
kept beside them across runs, never learnt twice; on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats
from test_batch_forecast import bars, home, without_mlflow_env  # noqa: F401  (module fixtures)

from conftest import bars_from_returns, random_walk_bars
from forecaster import forecast_store, tracking
from forecaster.calibration.aci import DEFAULT_GAMMA, DTACI_GAMMAS
from forecaster.config import DEFAULT_LEVELS, Settings
from forecaster.data import PriceStore
from pipelines import batch_forecast

JUMP = 0.06  # AAA's daily log return after D1: far above any quantile of a 1%-volatility model


@pytest.fixture
def rising(home, store_url, tmp_path, monkeypatch):  # noqa: F811
    """A data folder where AAA rises 6% a day after D1 (BBB walks on); the champion of `home`."""
    without_mlflow_env(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(home / 'mlflow.db').resolve()}")
    returns = np.random.default_rng(1).normal(0.0, 0.01, 299)
    returns[-10:] = JUMP  # the last 10 days
    prices = pd.concat([bars_from_returns(returns, "AAA"), random_walk_bars(300, "BBB", seed=2)])
    folder = tmp_path / "rising"
    PriceStore(folder / "prices").write(prices.reset_index(drop=True))
    dates = sorted(prices["date"].unique())
    settings = Settings(home=folder, universe=["AAA", "BBB"], forecast_store_url=store_url)
    engine = forecast_store.connect(store_url)
    yield settings, engine, [pd.Timestamp(d).date() for d in dates]
    engine.dispose()


def state_of(engine) -> list[dict]:
    with engine.connect() as conn:
        query = sa.select(forecast_store.aci_state).order_by("ticker", "horizon", "level")
        return [dict(r._mapping) for r in conn.execute(query)]


def stored(engine, ticker: str, as_of) -> list[dict]:
    t = forecast_store.forecasts.c
    with engine.connect() as conn:
        query = (
            sa.select(forecast_store.forecasts)
            .where(t.ticker == ticker, t.as_of == as_of)
            .order_by(t.horizon)
        )
        return [dict(r._mapping) for r in conn.execute(query)]


def test_state_persists_across_runs_and_learns_each_outcome_once(rising):
    settings, engine, dates = rising
    d1, d2 = dates[-11], dates[-6]  # AAA jumps from d1 on; d2 is 5 sessions later (horizon 3)

    batch_forecast.run(settings, d1, engine=engine)
    first = state_of(engine)
    assert {r["ticker"] for r in first} == {"AAA", "BBB"}
    assert all(r["working_level"] == r["level"] and r["updated_through"] == d1 for r in first)

    batch_forecast.run(settings, d2, engine=engine)
    second = state_of(engine)
    assert all(r["updated_through"] == d2 for r in second)
    aaa = [r for r in second if r["ticker"] == "AAA"]
    assert len(aaa) == 3 * len(DEFAULT_LEVELS)  # horizons x the model's levels
    # One outcome per horizon came due (the d1 forecast), above every served quantile: each level
    # moved up by exactly gamma * level, once.
    for r in aaa:
        assert r["working_level"] == pytest.approx(r["level"] * (1 + DEFAULT_GAMMA), rel=1e-12)

    # So AAA's served quantiles at d2 are higher than the model's nominal ones.
    champion = tracking.load_registered(settings)
    nominal, _ = batch_forecast.forecast(
        champion.model, PriceStore(settings.price_dir).read(), d2, model_name="fcm-lstm", model_version="1"
    )
    for row, plain in zip(
        stored(engine, "AAA", d2), [r for r in nominal if r["ticker"] == "AAA"], strict=True
    ):
        # Every level up (or level, where the tiny model's neighbouring quantiles coincide).
        assert all(row["quantiles"][k] >= v for k, v in plain["quantiles"].items())
        assert row["quantiles"]["0.5"] > plain["quantiles"]["0.5"]
        assert row["upper_95"] == row["quantiles"]["0.975"] and row["forecast"] == pytest.approx(
            plain["forecast"]
        )


def test_rerunning_a_day_changes_nothing_and_a_backfill_is_served_nominal(rising):
    settings, engine, dates = rising
    d1, d2, between = dates[-11], dates[-6], dates[-8]
    batch_forecast.run(settings, d1, engine=engine)
    batch_forecast.run(settings, d2, engine=engine)
    state, rows = state_of(engine), stored(engine, "AAA", d2)

    again = batch_forecast.run(settings, d2, engine=engine)
    assert again.rows_written == 0
    assert state_of(engine) == state and stored(engine, "AAA", d2) == rows  # updated_at too

    # A day before the state's: its outcomes are known to the state already, so no ACI.
    backfill = batch_forecast.run(settings, between, engine=engine)
    assert backfill.rows_written == 2 * 3 and state_of(engine) == state
    champion = tracking.load_registered(settings)
    nominal, _ = batch_forecast.forecast(
        champion.model,
        PriceStore(settings.price_dir).read(),
        between,
        model_name="fcm-lstm",
        model_version="1",
    )
    assert [r["quantiles"] for r in stored(engine, "AAA", between)] == [
        r["quantiles"] for r in nominal if r["ticker"] == "AAA"
    ]
    (run,) = [r for r in forecast_store.recent_runs(engine) if r["counts"].get("as_of") == str(d2)][:1]
    assert run["counts"]["aci_tickers_learnt"] == 0  # the re-run, newest first


def test_stored_rows_carry_quantiles_and_regime(rising):
    settings, engine, dates = rising
    batch_forecast.run(settings, dates[-1], engine=engine)
    champion = tracking.load_registered(settings)
    for row in stored(engine, "BBB", dates[-1]):
        assert list(row["quantiles"]) == [repr(q) for q in champion.model.levels]
        assert row["quantiles"]["0.1"] == row["lower_80"] and row["quantiles"]["0.9"] == row["upper_80"]
        assert row["regime_label"] == champion.model.regime_labels_[row["regime"]]
        assert isinstance(row["regime_shift"], bool)
    counts = forecast_store.tickers_by_regime(engine, "fcm-lstm")
    assert sum(counts.values()) == 2 and set(counts) <= set(champion.model.regime_labels_)


def test_a_dtaci_champion_learns_its_candidates_and_stores_them(rising, monkeypatch):
    """The champion's config names the rule (train.aci_method): the batch job learns by DtACI."""
    settings, engine, dates = rising
    load = tracking.load_registered

    def dtaci_champion(*args, **kwargs):
        champion = load(*args, **kwargs)
        champion.model.config = champion.model.config.with_(train={"aci_method": "dtaci"})
        return champion

    monkeypatch.setattr(tracking, "load_registered", dtaci_champion)
    d1, d2 = dates[-11], dates[-6]
    k = len(DTACI_GAMMAS)
    batch_forecast.run(settings, d1, engine=engine)
    for r in state_of(engine):  # nothing due yet: every candidate at the nominal level
        assert r["working_level"] == r["level"]
        assert r["candidates"] == {
            "gammas": list(DTACI_GAMMAS),
            "levels": [r["level"]] * k,
            "weights": [1 / k] * k,
        }

    batch_forecast.run(settings, d2, engine=engine)
    aaa = [r for r in state_of(engine) if r["ticker"] == "AAA"]
    assert len(aaa) == 3 * len(DEFAULT_LEVELS) and all(r["updated_through"] == d2 for r in aaa)
    for r in aaa:
        # One outcome per horizon h, above every quantile: each candidate moved up by
        # (gamma / h) * level once; their losses were equal, so the weights stayed equal.
        moved = [r["level"] * (1 + g / r["horizon"]) for g in DTACI_GAMMAS]
        assert r["candidates"]["levels"] == pytest.approx(moved, rel=1e-12)
        assert r["candidates"]["weights"] == pytest.approx([1 / k] * k, rel=1e-9)
        # Their mean in normal scores, each at most 0.999 (0.99 moved past 1: the widest served)
        served = stats.norm.cdf(np.mean(stats.norm.ppf(np.minimum(moved, 0.999))))
        assert r["working_level"] == pytest.approx(served, rel=1e-9) and r["working_level"] > r["level"]
