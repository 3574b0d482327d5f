"""The walk-forward folds, and FuzzyLSTMForecaster.historical_forecasts through them: refits on the
past only, forecasts every origin once."""

import numpy as np
import pandas as pd
import pytest

from forecaster.config import WindowConfig
from forecaster.model import FuzzyLSTMForecaster
from forecaster.walkforward import walk_forward_folds

WINDOW = WindowConfig(window=10, horizon=3)


def test_folds_refit_every_k_origins_and_hand_every_origin_to_one_fold(two_ticker_bars):
    dates = np.sort(two_ticker_bars["date"].unique()).astype("datetime64[D]")
    plan = walk_forward_folds(two_ticker_bars, WINDOW, start=dates[200], end=dates[259], refit_every=25)
    np.testing.assert_array_equal(plan.origins, dates[200:260])
    assert [f.refit for f in plan.folds] == [dates[200], dates[225], dates[250]]
    tested = [plan.test_windows(f) for f in plan.folds]
    assert [len(np.unique(t.origin)) for t in tested] == [25, 25, 10]
    assert sum(len(t) for t in tested) == 2 * 60  # every ticker and origin once
    for fold, test in zip(plan.folds, tested, strict=True):
        train = plan.train_bars(fold)
        assert train["date"].max() == fold.refit and (test.origin >= fold.refit).all()
        assert (test.origin < fold.stop).all() and len(train) == 2 * (200 + 25 * fold.index + 1)
    fixed = walk_forward_folds(two_ticker_bars, WINDOW, start=dates[200], refit_every=25, train_days=100)
    assert (fixed.train_bars(fixed.folds[1]).groupby("ticker").size() == 101).all()
    whole = walk_forward_folds(two_ticker_bars, WINDOW, start=dates[200], refit_every=None)
    (single,) = whole.folds  # no refit: one fold to the last origin with known targets
    assert single.refit == dates[200] and single.stop == dates[-4] + 1
    assert len(whole.test_windows(single)) == 2 * (len(dates) - 3 - 200)


def test_folds_refuse_what_cannot_be_walked(two_ticker_bars):
    with pytest.raises(ValueError, match="refit_every must be >= 1 trading day, got 0"):
        walk_forward_folds(two_ticker_bars, WINDOW, refit_every=0)
    with pytest.raises(ValueError, match="train_days=15 is too short for windows of 10 days"):
        walk_forward_folds(two_ticker_bars, WINDOW, train_days=15)
    with pytest.raises(ValueError, match="no origin between 2030-01-01 and"):
        walk_forward_folds(two_ticker_bars, WINDOW, start="2030-01-01")


def test_historical_forecasts_refit_on_the_past_and_cover_every_origin(
    tiny_config, two_ticker_bars, monkeypatch
):
    seen = []
    fit = FuzzyLSTMForecaster.fit

    def recording_fit(self, bars, progress=None):
        seen.append((bars["date"].max(), self.config.window.test_fraction))
        return fit(self, bars, progress=progress)

    monkeypatch.setattr(FuzzyLSTMForecaster, "fit", recording_fit)
    dates = np.sort(two_ticker_bars["date"].unique())
    start, end = dates[200], dates[260]
    frame = FuzzyLSTMForecaster(tiny_config).historical_forecasts(
        two_ticker_bars, start=start, end=end, refit_every=25
    )
    horizon = tiny_config.window.horizon
    origins = dates[200:261]
    assert len(frame) == 2 * len(origins) * horizon  # every ticker, origin and horizon once
    assert frame.groupby("fold")["refit_date"].nunique().eq(1).all() and frame["fold"].nunique() == 3
    assert [pd.Timestamp(d) for d, _ in seen] == sorted(frame["refit_date"].unique())  # fitted on the past
    assert all(test_fraction == 0 for _, test_fraction in seen)
    assert (frame["origin"] >= frame["refit_date"]).all() and (frame["target_date"] > frame["origin"]).all()
    assert {"forecast", "quantile_0.025", "quantile_0.975", "lower_80", "upper_95", "u_0"} <= set(
        frame.columns
    )
    closes = two_ticker_bars.set_index(["ticker", "date"])["adj_close"]
    actual = closes.reindex(pd.MultiIndex.from_frame(frame[["ticker", "target_date"]])).to_numpy()
    np.testing.assert_allclose(frame["actual"], actual, rtol=1e-6)  # rebuilt from float32 returns


def test_without_refit_the_fitted_model_forecasts_and_warns_inside_its_training_data(
    tiny_config, two_ticker_bars
):
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    with pytest.warns(UserWarning, match="saw their targets"):
        frame = model.historical_forecasts(two_ticker_bars, start="2010-06-01", refit_every=None)
    assert frame["fold"].eq(0).all() and frame["origin"].min() >= pd.Timestamp("2010-06-01")
    with pytest.raises(ValueError, match="fit it first"):
        FuzzyLSTMForecaster(tiny_config).historical_forecasts(two_ticker_bars, refit_every=None)
