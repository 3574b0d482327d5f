"""Adaptive conformal inference: restores coverage after a break, reads no future, keeps its state."""

import numpy as np
from scipy import stats

from forecaster.calibration.aci import ACIState, interpolate_quantiles, run_aci
from forecaster.config import DEFAULT_LEVELS

LEVELS = DEFAULT_LEVELS


def break_series(n=3000, seed=0):
    """Daily returns whose volatility doubles halfway; forecasts that still believe the old one."""
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n) < n // 2, 0.01, 0.02)
    y = rng.standard_normal(n) * sigma
    quantiles = np.repeat(0.01 * stats.norm.ppf(LEVELS)[None, None, :], n, axis=0)  # [n, 1, Q]
    dates = np.arange(np.datetime64("2010-01-01"), np.datetime64("2010-01-01") + n)
    return y, quantiles, dates


def coverage_80(y, quantiles):
    lo, hi = LEVELS.index(0.1), LEVELS.index(0.9)
    return float(((y >= quantiles[:, 0, lo]) & (y <= quantiles[:, 0, hi])).mean())


def test_aci_restores_coverage_after_a_volatility_break_where_split_conformal_does_not():
    y, quantiles, dates = break_series()
    served = run_aci(np.array(["A"] * len(y)), dates, dates[:, None] + 1, quantiles, y[:, None], LEVELS)
    after = slice(2000, 3000)  # 500 days after the break, once ACI has had time to move
    split, adaptive = coverage_80(y[after], quantiles[after]), coverage_80(y[after], served[after])
    assert split < 0.55  # calibrated for the old volatility: far too narrow
    assert abs(adaptive - 0.80) < 0.05, adaptive
    assert np.all(np.diff(served, axis=-1) >= 0)  # served quantiles never cross


def test_no_outcome_after_an_origin_reaches_the_quantiles_served_at_it():
    y, quantiles, dates = break_series(600)
    target = dates[:, None] + 3  # outcomes known three days after each origin
    tickers = np.array(["A", "B"] * 300)
    served = run_aci(tickers, dates, target, quantiles, y[:, None], LEVELS)
    cut = 400
    corrupted = y.copy()
    corrupted[cut - 2 :] = 10.0  # outcomes of origins >= cut-2 are dated after origin cut
    again = run_aci(tickers, dates, target, quantiles, corrupted[:, None], LEVELS)
    np.testing.assert_array_equal(served[: cut + 1], again[: cut + 1])
    assert not np.array_equal(served[cut + 10 :], again[cut + 10 :])


def test_state_survives_a_round_trip_through_records():
    state = ACIState(LEVELS, horizon=2)
    state.update(["A", "A", "B"], [1, 2, 1], np.array([0.05, -0.05, 0.0]), np.zeros((3, len(LEVELS))))
    again = ACIState.from_records(state.to_records(), LEVELS, 2)
    assert again.working.keys() == state.working.keys()
    for ticker in state.working:
        np.testing.assert_array_equal(again.working[ticker], state.working[ticker])
    # A miss above raises every working level; an outcome below lowers them.
    assert np.all(state.working["A"][0] > LEVELS) and np.all(state.working["A"][1] < LEVELS)


def test_interpolation_returns_the_known_quantiles_and_normal_tails():
    q = stats.norm.ppf(LEVELS)[None, :]
    np.testing.assert_allclose(interpolate_quantiles(q, LEVELS, np.array([LEVELS])), q, atol=1e-12)
    beyond = interpolate_quantiles(q, LEVELS, np.array([[0.005, 0.99]]))
    np.testing.assert_allclose(beyond, stats.norm.ppf([[0.005, 0.99]]), atol=1e-9)
