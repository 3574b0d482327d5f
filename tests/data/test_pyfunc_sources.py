"""`mlflow.pyfunc.load_model("models:/fcm-lstm@champion").predict(bars)` takes frames as real sources
give them: int64 volume (yfinance, the arch sample), dates as strings (a CSV read with pandas)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import yfinance as yf
from arch.data import sp500

from conftest import mlflow_environment_restored, random_walk_bars
from forecaster import tracking
from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)
from forecaster.data import load_sample, read_bars_file, validate_bars
from forecaster.model import FuzzyLSTMForecaster

from .conftest import YAHOO_FIXTURES

BAR_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume"]


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A tiny registered champion with a 5-day window: the six recorded Yahoo sessions are enough."""
    home = tmp_path_factory.mktemp("pyfunc-sources")
    bars = pd.concat([random_walk_bars(300, "AAA", seed=1), random_walk_bars(300, "BBB", seed=2)])
    config = ForecasterConfig(
        window=WindowConfig(window=5, horizon=2),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu"),
    )
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: put it back, or later tests use this store.
    with mlflow_environment_restored(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        settings = Settings(home=home)
        model = FuzzyLSTMForecaster(config).fit(bars.reset_index(drop=True), progress=False)
        tracking.log_training_run(model, bars.reset_index(drop=True), settings)
        tracking.promote(settings, bars)
        return mlflow.pyfunc.load_model("models:/fcm-lstm@champion"), model


def recorded_yfinance_frame(yahoo) -> pd.DataFrame:
    """yfinance's own frame of the recorded GS answer, put in the bar contract as a user would."""
    yahoo.charts["GS"] = (200, (YAHOO_FIXTURES / "chart-GS-1d-2023-10-02_2023-10-09.json").read_bytes())
    raw = yf.Ticker("GS").history(start="2023-10-02", end="2023-10-10", interval="1d", auto_adjust=False)
    assert raw["Volume"].dtype == np.int64 and len(raw) == 6
    frame = raw.rename(columns=lambda c: c.lower().replace(" ", "_")).reset_index()
    frame["date"] = frame["Date"].dt.tz_localize(None).dt.normalize()
    return frame.assign(ticker="GS")[BAR_COLUMNS]


def test_pyfunc_accepts_the_frames_real_sources_give(champion, yahoo, tmp_path):
    pyfunc, model = champion
    sample = load_sample(["^GSPC"]).tail(40).reset_index(drop=True)
    assert sp500.load()["Volume"].dtype == np.int64  # what the arch package ships
    csv = tmp_path / "^GSPC.csv"
    sample.assign(volume=sample["volume"].astype(np.int64)).to_csv(csv, index=False)
    frames = {
        "sample": sample,
        "sample, int64 volume as arch ships it": sample.assign(volume=sample["volume"].astype(np.int64)),
        "CSV via forecaster.data": read_bars_file(csv),
        "CSV via pandas.read_csv": pd.read_csv(csv),  # int64 volume, dates as strings
        "yfinance": recorded_yfinance_frame(yahoo),
    }
    assert frames["CSV via pandas.read_csv"]["volume"].dtype == np.int64
    assert not pd.api.types.is_datetime64_any_dtype(frames["CSV via pandas.read_csv"]["date"])
    for source, frame in frames.items():
        got = pyfunc.predict(frame)
        expected = model.predict(validate_bars(frame))
        assert len(got) == 2, source
        pd.testing.assert_frame_equal(
            got.drop(columns="regime_shift"), expected, check_exact=True, obj=source
        )


def test_bad_values_are_still_refused_naming_ticker_date_and_row(champion):
    pyfunc, _ = champion
    sample = load_sample(["^GSPC"]).tail(40).reset_index(drop=True)
    sample.loc[7, "volume"] = -5
    day = sample.loc[7, "date"].date()
    with pytest.raises(Exception, match=rf"\^GSPC: volume is -5.0 on {day} \(row 7\); need finite and >= 0"):
        pyfunc.predict(sample)
