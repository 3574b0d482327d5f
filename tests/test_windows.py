import numpy as np
import pandas as pd
import pytest

from conftest import bars_from_returns, random_walk_bars
from forecaster.config import WindowConfig
from forecaster.data.sessions import future_sessions
from forecaster.features.daily import daily_features
from forecaster.features.scaler import FeatureScaler
from forecaster.features.splits import split_windows
from forecaster.features.windows import concat_windows, latest_windows, make_windows, window_from_arrays
from forecaster.regimes.descriptors import regime_descriptors


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


def _materialised(bars, config, labelled=True):
    """Windows cut the way make_windows did before it went lazy: the [N, L, F] reference."""
    L, H = config.window, config.horizon
    out = {k: [] for k in ("x", "y", "origin", "target_dates", "last_price")}
    for _, one in bars.groupby("ticker", sort=True):
        feats = daily_features(one, config.features)
        dates, prices, n = one["date"].to_numpy("datetime64[D]"), one["adj_close"].to_numpy(), len(feats)
        ends = np.arange(L - 1, n - H if labelled else n, config.stride)
        views = np.lib.stride_tricks.sliding_window_view(feats, L, axis=0)
        future = ends[:, None] + np.arange(1, H + 1)
        at = np.where(future < n, future, n)
        out["x"].append(views[ends - (L - 1)].transpose(0, 2, 1).astype(np.float32))
        out["y"].append(np.append(feats[:, 0], np.nan)[at].astype(np.float32))
        out["origin"].append(dates[1:][ends])
        out["target_dates"].append(np.append(dates[1:], np.datetime64("NaT"))[at])
        out["last_price"].append(prices[1:][ends])
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.fixture
def three_tickers():
    return pd.concat(
        [
            random_walk_bars(150, "AAA", 1),
            random_walk_bars(90, "BBB", 2, 0.03),
            random_walk_bars(12, "CCC", 3),
        ],
        ignore_index=True,
    )


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize(
    ("stride", "features"),
    [
        (1, ("log_return", "log_range")),
        (3, ("log_return", "log_volume_change", "ewma_vol", "rv_22", "norm_return")),
    ],
)
def test_lazy_windows_equal_materialised_windows(three_tickers, stride, features, labelled):
    config = WindowConfig(window=10, horizon=3, stride=stride, features=features)
    lazy, reference = (
        make_windows(three_tickers, config, labelled=labelled),
        _materialised(three_tickers, config, labelled),
    )
    for name, expected in reference.items():
        np.testing.assert_array_equal(getattr(lazy, name), expected, err_msg=name)
    np.testing.assert_array_equal(lazy.returns, reference["x"][:, :, 0])
    rows = np.array([5, 0, len(lazy) - 1])
    np.testing.assert_array_equal(lazy.gather(rows), reference["x"][rows])
    mask = lazy.ticker == "BBB"
    np.testing.assert_array_equal(lazy.subset(mask).x, reference["x"][mask])


def test_window_memory_grows_with_bars_not_windows(three_tickers):
    ws = make_windows(three_tickers, WindowConfig(window=10, horizon=3, features=("log_return", "log_range")))
    # One row per bar after each ticker's first (CCC is too short for a window and is left out).
    assert ws.features.shape == (149 + 89, 2) and ws.features.dtype == np.float32
    assert ws.end.shape == (len(ws),) and len(ws) * 10 > 3 * len(ws.features)


def test_a_device_tensor_of_features_gathers_the_same_batches(three_tickers):
    torch = pytest.importorskip("torch")
    ws = make_windows(three_tickers, WindowConfig(window=10, horizon=3))
    rows = np.arange(0, len(ws), 7)
    batch = torch.as_tensor(ws.features)[torch.as_tensor(ws.window_index(rows))]  # [B, L, F]
    np.testing.assert_array_equal(batch.numpy(), ws.gather(rows))


def test_scaler_weights_each_day_by_the_windows_that_hold_it(three_tickers):
    config = WindowConfig(window=10, horizon=3, features=("log_return", "log_range", "rv_5"))
    train = split_windows(make_windows(three_tickers, config), config)["train"]
    scaler = FeatureScaler().fit(train)
    flat = train.x.reshape(-1, 3).astype(np.float64)  # what fit averaged before windows went lazy
    np.testing.assert_allclose(scaler.mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std, flat.std(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(
        scaler.transform_x(train.features)[train.window_index()], scaler.transform_x(train.x)
    )


def test_concat_shares_features_of_one_set_and_offsets_those_of_several(three_tickers):
    config = WindowConfig(window=10, horizon=3)
    ws = make_windows(three_tickers, config)
    a, b = ws.subset(ws.ticker == "BBB"), ws.subset(ws.ticker == "AAA")
    joined = concat_windows([a, b])
    assert joined.features is ws.features
    np.testing.assert_array_equal(joined.x, np.concatenate([a.x, b.x]))
    apart = concat_windows(
        [make_windows(three_tickers[three_tickers.ticker == t], config) for t in ("AAA", "BBB")]
    )
    np.testing.assert_array_equal(apart.x, ws.x)
    np.testing.assert_array_equal(apart.origin, ws.origin)


def test_latest_window_with_volatility_features_matches_the_full_history():
    bars = random_walk_bars(700, vol=0.02)
    config = WindowConfig(
        window=10, horizon=3, stride=4, features=("log_return", "ewma_vol", "rv_66", "norm_return")
    )
    latest = latest_windows(bars, config)  # stride 4 would not end on the last bar: latest ignores it
    every = make_windows(bars, WindowConfig(window=10, horizon=3, features=config.features), labelled=False)
    assert latest.origin[0] == np.datetime64(bars["date"].iloc[-1].date())
    np.testing.assert_allclose(latest.x[0], every.x[-1], rtol=1e-6)  # EWMA has forgotten its start
    arrays = {c: bars[c].to_numpy() for c in ("date", "adj_close", "high", "low", "volume")}
    np.testing.assert_array_equal(window_from_arrays("TEST", arrays, config).x, latest.x)
