"""Batch forecast job and forecast store, on SQLite and on the machine's PostgreSQL, with a tiny
champion registered in a temporary SQLite MLflow store."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa

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
from forecaster.data import DataSourceError, PriceStore
from forecaster.model import FuzzyLSTMForecaster
from pipelines import batch_forecast

HORIZON = 3


def without_mlflow_env(mp: pytest.MonkeyPatch) -> None:
    """Unset MLFLOW_TRACKING_URI now, and put it back as it was on undo.

    `mlflow.set_tracking_uri` exports the variable, so without this a test's temporary store
    would leak into every later test's Settings. Setting it first makes the monkeypatch
    remember the original state (even "not set"), which `delenv` alone does not.
    """
    mp.setenv("MLFLOW_TRACKING_URI", "placeholder")
    mp.delenv("MLFLOW_TRACKING_URI")


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """AAA and BBB up to 2011-02-25; CCC stops earlier (stale)."""
    return pd.concat(
        [
            random_walk_bars(300, "AAA", seed=1),
            random_walk_bars(300, "BBB", seed=2),
            random_walk_bars(250, "CCC", seed=3),
        ],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory, bars):
    """A data folder with the bars in its price store and a tiny champion in its MLflow store."""
    home = tmp_path_factory.mktemp("home")
    PriceStore(home / "prices").write(bars)
    config = ForecasterConfig(  # tests/conftest.py's tiny_config
        window=WindowConfig(window=10, horizon=HORIZON),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=2, batch_size=64, device="cpu"),
    )
    train_bars = bars[bars["ticker"] != "CCC"]
    with pytest.MonkeyPatch.context() as mp:
        without_mlflow_env(mp)
        settings = Settings(home=home)
        model = FuzzyLSTMForecaster(config).fit(train_bars, progress=False)
        tracking.log_training_run(model, train_bars, settings)
        assert tracking.promote(settings, train_bars).promoted
    return home


@pytest.fixture
def settings(home, store_url, monkeypatch) -> Settings:
    without_mlflow_env(monkeypatch)
    return Settings(home=home, universe=["AAA", "bbb", "CCC", "DDD"], forecast_store_url=store_url)


@pytest.fixture
def engine(settings):
    engine = forecast_store.connect(settings.forecast_store_url)
    yield engine
    engine.dispose()


def stored_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        query = sa.select(forecast_store.forecasts).order_by("ticker", "horizon")
        return [dict(r._mapping) for r in conn.execute(query)]


def test_rows_are_written_once_and_a_rerun_is_a_no_op(settings, engine, bars):
    first = batch_forecast.run(settings, engine=engine)

    last_day = dt.date(2011, 2, 25)
    assert first.as_of == last_day == bars["date"].max().date()
    assert first.forecast == ["AAA", "BBB"] and first.rows_written == 2 * HORIZON
    rows = stored_rows(engine)
    assert [(r["ticker"], r["horizon"]) for r in rows] == [(t, h) for t in ("AAA", "BBB") for h in (1, 2, 3)]
    assert {(r["as_of"], r["model_name"], r["model_version"]) for r in rows} == {(last_day, "fcm-lstm", "1")}
    assert rows[0]["target_date"] == dt.date(2011, 2, 28)  # the next NYSE session
    champion = tracking.load_registered(settings)
    # Alone or in a batch of two: the same forecast, up to float32 rounding.
    expected = champion.model.predict(bars[bars["ticker"] == "AAA"])
    assert [r["forecast"] for r in rows[:HORIZON]] == pytest.approx(expected["forecast"].tolist(), rel=1e-6)
    assert all(r["lower_95"] < r["lower_80"] < r["forecast"] < r["upper_80"] < r["upper_95"] for r in rows)
    assert rows[0]["run_id"] == champion.run_id

    second = batch_forecast.run(settings, engine=engine)
    assert second.rows_written == 0 and second.rows_total == 2 * HORIZON
    assert stored_rows(engine) == rows  # not rewritten: created_at is the first run's

    runs = forecast_store.recent_runs(engine)
    assert [r["job"] for r in runs] == ["batch_forecast"] * 2
    assert [r["counts"]["rows_written"] for r in runs] == [0, 2 * HORIZON]
    assert all(r["status"] == "partial" and r["finished_at"] >= r["started_at"] for r in runs)


def test_stale_and_missing_tickers_are_skipped_and_reported(settings, engine):
    result = batch_forecast.run(settings, engine=engine)

    assert result.skipped == {
        "DDD": "not in the price store",
        "CCC": "stale: last bar 2010-12-17, as of 2011-02-25",
    }
    assert {r["ticker"] for r in stored_rows(engine)} == {"AAA", "BBB"}
    assert forecast_store.latest_forecasts(engine, "CCC") == []
    (run,) = forecast_store.recent_runs(engine)
    assert run["counts"]["skipped"] == 2 and "CCC: stale" in run["error"] and "DDD" in run["error"]


def test_latest_forecasts_gives_the_newest_as_of_of_one_ticker(settings, engine):
    batch_forecast.run(settings, engine=engine)
    batch_forecast.run(settings, "2011-02-24", engine=engine)  # a backfill, written later

    latest = forecast_store.latest_forecasts(engine, "aaa")
    assert [r["horizon"] for r in latest] == [1, 2, 3]
    assert {r["as_of"] for r in latest} == {dt.date(2011, 2, 25)} and {r["ticker"] for r in latest} == {"AAA"}
    assert latest[0]["last_price"] > 0 and latest[0]["created_at"] <= forecast_store.utcnow()
    assert forecast_store.latest_forecasts(settings.forecast_store_url, "AAA") == latest
    assert forecast_store.latest_forecasts(engine, "AAA", model_name="other") == []


def test_a_failure_mid_batch_leaves_no_partial_batch(settings, engine, bars):
    champion = tracking.load_registered(settings)
    rows, _ = batch_forecast.forecast(
        champion.model, bars[bars["ticker"] != "CCC"], model_name="fcm-lstm", model_version="1"
    )
    rows[-1]["forecast"] = -1.0  # the database refuses the batch's last row

    with pytest.raises(sa.exc.IntegrityError, match="ck_forecasts_positive"):
        forecast_store.write_forecasts(engine, rows)
    assert stored_rows(engine) == []

    rows[-1]["forecast"] = float("nan")  # caught before the database, naming the row
    with pytest.raises(ValueError, match=r"^BBB: forecast is nan at horizon 3 as of 2011-02-25 \(row 5\)"):
        forecast_store.write_forecasts(engine, rows)
    assert stored_rows(engine) == []


def test_a_day_no_ticker_traded_fails_the_run_and_records_why(settings, engine):
    with pytest.raises(DataSourceError, match="no ticker can be forecast as of 2011-02-26"):
        batch_forecast.run(settings, "2011-02-26", engine=engine)  # a Saturday
    (run,) = forecast_store.recent_runs(engine)
    assert run["status"] == "failed" and "AAA: stale: last bar 2011-02-25" in run["error"]
    assert stored_rows(engine) == []


def test_a_job_that_lost_its_lock_writes_nothing_and_records_why(settings, engine):
    lost = forecast_store.acquire_lock(engine, "daily", "scheduler-a", dt.timedelta(seconds=0.2))
    time.sleep(0.4)  # scheduler-a stalls past its lease, and scheduler-b takes the lock over
    assert forecast_store.acquire_lock(engine, "daily", "scheduler-b", dt.timedelta(minutes=5))

    with pytest.raises(
        forecast_store.LockLostError, match=r"scheduler-a lost it \(now held by scheduler-b\)"
    ):
        batch_forecast.run(settings, engine=engine, fence=lost)
    assert stored_rows(engine) == []
    (run,) = forecast_store.recent_runs(engine)
    assert run["status"] == "failed" and run["error"].startswith("LockLostError: lock daily")


def test_runs_command_lists_the_recorded_runs(settings, engine, monkeypatch):
    from typer.testing import CliRunner

    from forecaster.cli import app

    batch_forecast.run(settings, engine=engine)
    monkeypatch.setenv("FORECASTER_HOME", str(settings.home))
    monkeypatch.setenv("FORECASTER_FORECAST_STORE_URL", settings.forecast_store_url)
    result = CliRunner().invoke(app, ["runs", "--job", "batch_forecast"])
    assert result.exit_code == 0, result.output
    assert "batch_forecast" in result.output and "partial" in result.output
    assert "rows_written=6" in result.output


def test_the_batch_forecast_verb_runs_the_job_and_names_a_bad_date(home, tmp_path):
    store_url = f"sqlite:///{tmp_path / 'forecasts.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORECASTER_"))}
    env |= {
        "FORECASTER_HOME": str(home),
        "FORECASTER_UNIVERSE": '["AAA", "BBB"]',
        "FORECASTER_FORECAST_STORE_URL": store_url,
    }
    verb = [sys.executable, "-m", "forecaster.cli", "batch-forecast"]
    done = subprocess.run([*verb, "--as-of", "2011-02-24"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    engine = forecast_store.connect(store_url)
    rows = stored_rows(engine)
    engine.dispose()
    assert {(r["ticker"], r["as_of"]) for r in rows} == {
        ("AAA", dt.date(2011, 2, 24)),
        ("BBB", dt.date(2011, 2, 24)),
    }

    bad = subprocess.run([*verb, "--as-of", "2011-02-30"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "as_of" in bad.stderr and "2011-02-30" in bad.stderr, bad.stderr
