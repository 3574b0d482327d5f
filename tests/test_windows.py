import numpy as np
import pandas as pd
import pytest

from conftest import bars_from_returns, random_walk_bars
from forecaster.config import WindowConfig
from forecaster.sessions import future_sessions
from forecaster.windows import (
    FeatureScaler,
    daily_features,
    latest_windows,
    make_windows,
    regime_descriptors,
    split_windows,
    window_from_arrays,
)


def test_window_holds_past_features_and_target_is_next_horizon_returns():
    returns = np.arange(1, 60) / 1000.0
    bars = bars_from_returns(returns)
    ws = make_windows(bars, WindowConfig(window=10, horizon=3, features=("log_return",)))
    # First window: returns 1..10 (feature rows 0..9), target: returns 11..13.
    np.testing.assert_allclose(ws.x[0, :, 0], returns[:10], rtol=1e-5)
    np.testing.assert_allclose(ws.y[0], returns[10:13], rtol=1e-5)
    assert ws.origin[0] == np.datetime64(bars["date"].iloc[10].date())
    np.testing.assert_allclose(ws.last_price[0], bars["adj_close"].iloc[10])
    np.testing.assert_allclose(ws.target_prices()[0], bars["adj_close"].iloc[11:14], rtol=1e-5)
    assert len(ws) == len(returns) - 10 - 3 + 1


def test_features_are_scale_free():
    bars = random_walk_bars(100)
    scaled = bars.copy()
    for col in ("open", "high", "low", "close", "adj_close"):
        scaled[col] *= 1000
    scaled["volume"] *= 7
    features = ("log_return", "log_range")
    np.testing.assert_allclose(daily_features(bars, features), daily_features(scaled, features), atol=1e-9)


def test_windows_are_pooled_across_tickers_and_never_mix_them():
    bars = pd.concat([random_walk_bars(80, "AAA", 1), random_walk_bars(60, "BBB", 2)], ignore_index=True)
    ws = make_windows(bars, WindowConfig(window=10, horizon=2))
    assert set(ws.ticker) == {"AAA", "BBB"}
    assert (ws.ticker == "AAA").sum() == 79 - 10 - 2 + 1
    assert (ws.ticker == "BBB").sum() == 59 - 10 - 2 + 1


def test_stride_skips_window_origins():
    bars = random_walk_bars(100)
    assert len(make_windows(bars, WindowConfig(window=10, horizon=2, stride=5))) == len(range(9, 99 - 2, 5))


def test_latest_window_ends_on_last_bar_with_unknown_target():
    bars = random_walk_bars(100)
    latest = latest_windows(bars, WindowConfig(window=10, horizon=3))
    assert len(latest) == 1
    assert latest.origin[0] == np.datetime64(bars["date"].iloc[-1].date())
    assert np.isnan(latest.y).all()


def test_too_few_bars_for_one_window_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 14 bars"):
        make_windows(random_walk_bars(12), WindowConfig(window=10, horizon=3))


@pytest.mark.parametrize("gap", [None, 10])
def test_windows_never_cross_split_boundary(gap, two_ticker_bars):
    config = WindowConfig(window=10, horizon=5, val_fraction=0.2, test_fraction=0.2, gap=gap)
    splits = split_windows(make_windows(two_ticker_bars, config), config)
    calendar = np.unique(two_ticker_bars["date"].to_numpy("datetime64[D]"))
    position = {d: i for i, d in enumerate(calendar)}
    for earlier, later in (("train", "val"), ("val", "test")):
        latest_target = max(position[d] for d in splits[earlier].target_dates[:, -1])
        earliest_target = min(position[d] for d in splits[later].target_dates[:, 0])
        assert earliest_target - latest_target >= config.split_gap
        # and no window of the later block starts before the earlier block's targets end
        assert splits[later].origin.min() > splits[earlier].target_dates.max()
    assert all(len(s) > 0 for s in splits.values())


def test_scaler_uses_training_windows_only(two_ticker_bars):
    config = WindowConfig(window=10, horizon=3)
    splits = split_windows(make_windows(two_ticker_bars, config), config)
    scaler = FeatureScaler().fit(splits["train"])
    train_flat = splits["train"].x.reshape(-1, splits["train"].x.shape[-1])
    np.testing.assert_allclose(scaler.mean, train_flat.mean(axis=0), rtol=1e-5)
    z = scaler.transform_x(splits["train"].x).reshape(-1, train_flat.shape[1])
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)


def test_regime_descriptors_tell_calm_from_turbulent():
    rng = np.random.default_rng(0)
    calm, wild = rng.normal(0, 0.005, (50, 30)), rng.normal(0, 0.03, (50, 30))
    d = regime_descriptors(np.vstack([calm, wild]), ("log_volatility", "cum_return"))
    assert d[:50, 0].max() < d[50:, 0].min()


def test_future_sessions_skip_weekends_and_exchange_holidays():
    dates = future_sessions(np.array(["2018-12-31"], dtype="datetime64[D]"), 3, "XNYS")
    assert dates[0].tolist() == [
        np.datetime64("2019-01-02"),
        np.datetime64("2019-01-03"),
        np.datetime64("2019-01-04"),
    ]


def test_window_from_arrays_equals_latest_window_of_the_frame():
    bars = random_walk_bars(80)
    config = WindowConfig(window=10, horizon=3, features=("log_return", "log_range", "log_volume_change"))
    arrays = {c: bars[c].to_numpy() for c in ("date", "adj_close", "high", "low", "volume")}
    fast, slow = window_from_arrays("TEST", arrays, config), latest_windows(bars, config)
    np.testing.assert_array_equal(fast.x, slow.x)
    np.testing.assert_array_equal(fast.origin, slow.origin)
    np.testing.assert_array_equal(fast.last_price, slow.last_price)
    with pytest.raises(ValueError, match="TEST: 5 bars, a forecast needs at least 11"):
        window_from_arrays("TEST", {k: v[:5] for k, v in arrays.items()}, config)
