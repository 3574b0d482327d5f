import numpy as np
import pytest

from conftest import random_walk_bars
from forecaster.config import FEATURES
from forecaster.features.daily import VOLATILITY_FEATURES, daily_features, history_needed
from forecaster.features.volatility import PRIOR_VOL, ewma_volatility, realized_volatility


def test_every_feature_has_one_row_per_day_after_the_first_and_log_return_first():
    bars = random_walk_bars(120)
    f = daily_features(bars, tuple(reversed(FEATURES)))
    assert f.shape == (119, len(FEATURES)) and np.isfinite(f).all()
    np.testing.assert_allclose(f[:, 0], np.diff(np.log(bars["adj_close"])))


def test_volatility_features_are_logs_of_the_volatility_helpers():
    bars = random_walk_bars(200, vol=0.02)
    f = daily_features(bars, ("log_return", "ewma_vol", "rv_5", "rv_22", "rv_66", "norm_return"))
    r = f[:, 0]
    sigma = ewma_volatility(r)
    np.testing.assert_allclose(f[:, 1], np.log(sigma))
    for column, days in ((2, 5), (3, 22), (4, 66)):
        np.testing.assert_allclose(f[:, column], np.log(realized_volatility(r, days)))
    # norm_return divides by the forecast made the day before (the prior on the first day).
    np.testing.assert_allclose(f[1:, 5], r[1:] / sigma[:-1])
    np.testing.assert_allclose(f[0, 5], r[0] / PRIOR_VOL)
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
