import numpy as np
import pytest

from conftest import random_walk_bars
from forecaster.config import FEATURES
from forecaster.features.daily import VOLATILITY_FEATURES, daily_features, history_needed


def test_every_feature_has_one_row_per_day_after_the_first_and_log_return_first():
    bars = random_walk_bars(120)
    f = daily_features(bars, tuple(reversed(FEATURES)))
    assert f.shape == (119, len(FEATURES)) and np.isfinite(f).all()
    np.testing.assert_allclose(f[:, 0], np.diff(np.log(bars["adj_close"])))


def hand_volatilities(r: np.ndarray) -> dict[str, np.ndarray]:
    """The volatility features written out day by day, independently of forecaster.features.volatility:
    an expanding mean of squares with a 1% prior counted as one day, then EWMA 0.94 from day 20, and
    k-day root mean squares once k days exist."""
    out = {name: np.empty(len(r)) for name in ("ewma_vol", "rv_5", "rv_22", "rv_66")}
    var = 0.0
    for t in range(len(r)):
        expanding = (0.01**2 + np.sum(r[: t + 1] ** 2)) / (t + 2)
        var = expanding if t < 20 else 0.94 * var + 0.06 * r[t] ** 2
        out["ewma_vol"][t] = np.sqrt(var)
        for days in (5, 22, 66):
            mean_square = np.mean(r[t - days + 1 : t + 1] ** 2) if t >= days - 1 else expanding
            out[f"rv_{days}"][t] = np.sqrt(mean_square)
    return out


def test_volatility_features_match_a_hand_computation():
    bars = random_walk_bars(200, vol=0.02)
    names = ("log_return", "ewma_vol", "rv_5", "rv_22", "rv_66", "norm_return")
    f = daily_features(bars, names)
    r = np.diff(np.log(bars["adj_close"].to_numpy()))
    np.testing.assert_allclose(f[:, 0], r, rtol=1e-6)
    hand = hand_volatilities(r)
    for column, name in enumerate(names[1:5], start=1):
        np.testing.assert_allclose(f[:, column], np.log(hand[name]), rtol=1e-5, err_msg=name)
    # norm_return divides by the forecast made the day before (the 1% prior on the first day).
    np.testing.assert_allclose(f[1:, 5], r[1:] / hand["ewma_vol"][:-1], rtol=1e-5)
    np.testing.assert_allclose(f[0, 5], r[0] / 0.01, rtol=1e-5)
    assert 0.7 < f[100:, 5].std() < 1.3  # about unit variance once warmed up


@pytest.mark.parametrize("t", [0, 5, 25, 70, 150])
def test_features_of_day_t_do_not_depend_on_later_bars(t):
    bars = random_walk_bars(200, seed=1)
    later = random_walk_bars(200, seed=2, vol=0.05)
    changed = bars.copy()
    rows = slice(t + 2, None)  # bar t + 1 is feature row t; change every bar after it
    for col in ("open", "high", "low", "close", "adj_close", "volume"):
        changed.loc[changed.index[rows], col] = later[col].to_numpy()[rows] * (1.3 if col != "volume" else 3)
    before, after = daily_features(bars, FEATURES), daily_features(changed, FEATURES)
    np.testing.assert_array_equal(after[: t + 1], before[: t + 1])
    assert not np.allclose(after[t + 1], before[t + 1])


def test_history_needed_covers_the_volatility_lookback():
    assert history_needed(("log_return", "log_range"), 30) == 31
    assert all(history_needed(("log_return", f), 30) > 31 + 66 for f in VOLATILITY_FEATURES)
