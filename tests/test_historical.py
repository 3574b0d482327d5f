"""FuzzyLSTMForecaster.historical_forecasts: refits on the past only, forecasts every origin once."""

import numpy as np
import pandas as pd
import pytest

from forecaster.model import FuzzyLSTMForecaster


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
