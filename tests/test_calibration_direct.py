"""Calibration and the target's unit on their own: CQR's finite-sample ranks and coverage, the
volatility scale of the targets by hand, and the chronological blocks with their gap."""

import numpy as np
import pytest

from conftest import random_walk_bars
from forecaster.calibration.cqr import QuantileCalibrator, conformal_shifts
from forecaster.config import WindowConfig
from forecaster.features.splits import split_windows
from forecaster.features.volatility import horizon_scale, origin_volatility
from forecaster.features.windows import make_windows, standardized_targets

# ---- QuantileCalibrator ------------------------------------------------------------------------


def test_cqr_shifts_are_the_finite_sample_conformal_order_statistics():
    n = 199
    residual = np.random.default_rng(0).standard_normal((n, 2))
    levels = (0.004, 0.1, 0.5, 0.9, 0.999)
    cal = QuantileCalibrator(levels).fit(residual, np.zeros((n, 2, len(levels))))
    ordered = np.sort(residual, axis=0)
    # k-th smallest: floor((n + 1) tau) below the median, ceil((n + 1) tau) from it, clipped to 1..n:
    # 0.004 -> floor(0.8) = 0 -> 1; 0.1 -> 20; 0.5 -> 100; 0.9 -> 180; 0.999 -> ceil(199.8) = 200 -> n.
    for q, k in enumerate((1, 20, 100, 180, 199)):
        np.testing.assert_array_equal(cal.shifts_[:, q], ordered[k - 1])


def test_cqr_covers_at_nominal_on_exchangeable_data():
    """Averaged over many calibration sets, each level holds at least its share, and not much more."""
    rng = np.random.default_rng(1)
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    n, hits = 49, []
    for _ in range(400):
        draws = rng.standard_t(4, size=(n + 200, 1)) * 0.02 + 0.01  # biased, fat-tailed, exchangeable
        forecast = np.zeros((n + 200, 1, len(levels)))  # a useless forecast: all quantiles at 0
        cal = QuantileCalibrator(levels).fit(draws[:n], forecast[:n])
        hits.append((draws[n:, :, None] <= cal.transform(forecast[n:])).mean(axis=(0, 1)))
    hits = np.mean(hits, axis=0)
    # Conformal: P(y <= q_tau) = k / (n + 1) exactly, k = floor or ceil of (n + 1) tau; here 50 tau.
    expected = np.array([np.floor(2.5), np.floor(12.5), np.ceil(25), np.ceil(37.5), np.ceil(47.5)]) / 50
    np.testing.assert_allclose(hits, expected, atol=0.01)


def test_cqr_keeps_quantiles_ordered_and_round_trips_its_arrays():
    levels = (0.1, 0.5, 0.9)
    cal = QuantileCalibrator(levels).fit(np.zeros((20, 1)), np.zeros((20, 1, 3)))
    cal.shifts_ = np.array([[0.0, 2.0, 1.0]])  # shifts that would cross the 0.5 and 0.9 quantiles
    out = cal.transform(np.zeros((1, 1, 3)))
    np.testing.assert_array_equal(out[0, 0], [0.0, 2.0, 2.0])
    again = QuantileCalibrator.from_arrays(cal.to_arrays())
    assert again.levels == levels and np.array_equal(again.shifts_, cal.shifts_)
    with pytest.raises(ValueError, match="at least 10 calibration windows, got 9"):
        QuantileCalibrator(levels).fit(np.zeros((9, 1)), np.zeros((9, 1, 3)))


def test_cqr_ignores_memberships_and_shares_its_rank_rule():
    rng = np.random.default_rng(4)
    levels, actual, forecast = (0.1, 0.5, 0.9), rng.standard_normal((30, 2)), rng.standard_normal((30, 2, 3))
    u = np.eye(2)[rng.integers(0, 2, 30)]
    cal = QuantileCalibrator(levels).fit(actual, forecast, memberships=u)
    np.testing.assert_array_equal(cal.shifts_, QuantileCalibrator(levels).fit(actual, forecast).shifts_)
    np.testing.assert_array_equal(cal.shifts_, conformal_shifts(actual[:, :, None] - forecast, levels))
    np.testing.assert_array_equal(cal.transform(forecast, memberships=u), cal.transform(forecast))


# ---- the target's unit ---------------------------------------------------------------------------


def test_origin_volatility_is_the_window_ewma_started_at_its_mean_square():
    r = np.array([[0.01, -0.02, 0.03, 0.0, -0.01], [0.0, 0.0, 0.0, 0.0, 0.0]])
    s = np.mean(r[0] ** 2)  # 0.0003
    for x in r[0]:
        s = 0.94 * s + 0.06 * x**2
    np.testing.assert_allclose(origin_volatility(r), [np.sqrt(s), 1e-4])  # a flat window: the floor
    np.testing.assert_allclose(
        horizon_scale(np.array([0.01, 0.02]), 3),
        [[0.01, 0.01 * 2**0.5, 0.01 * 3**0.5], [0.02, 0.02 * 2**0.5, 0.02 * 3**0.5]],
    )


def test_standardized_targets_divide_cumulative_returns_by_sigma_sqrt_h_from_the_window_only():
    bars = random_walk_bars(60, seed=3)
    config = WindowConfig(window=5, horizon=3)
    windows = make_windows(bars, config)
    z, scale = standardized_targets(windows)
    log_close = np.log(bars["adj_close"].to_numpy())
    i = 7  # window 7: returns r_1..r_5 ending at bar 11 (its origin), targets bars 12..14
    origin = int(np.searchsorted(bars["date"].to_numpy(), windows.origin[i]))
    r = np.diff(log_close)[origin - 5 : origin]
    s = np.mean(r**2)
    for x in r:
        s = 0.94 * s + 0.06 * x**2
    cum = log_close[origin + 1 : origin + 4] - log_close[origin]
    np.testing.assert_allclose(scale[i], np.sqrt(s) * np.sqrt([1, 2, 3]), rtol=1e-6)
    np.testing.assert_allclose(z[i], cum / scale[i], rtol=1e-5)
    # Causal: the scale of a window does not move when every later bar changes.
    changed = bars.copy()
    changed.loc[origin + 1 :, "adj_close"] *= 1.5
    _, scale_changed = standardized_targets(make_windows(changed, config))
    np.testing.assert_array_equal(scale_changed[: i + 1], scale[: i + 1])


# ---- the calibration block ------------------------------------------------------------------------


@pytest.mark.parametrize("calib_fraction", [0.1, 0.0])
def test_blocks_are_chronological_with_a_gap_and_no_target_crosses_a_boundary(calib_fraction):
    bars = random_walk_bars(400, seed=4)
    config = WindowConfig(window=10, horizon=3, val_fraction=0.1, calib_fraction=calib_fraction, gap=4)
    windows = make_windows(bars, config)
    splits = split_windows(windows, config)
    calendar = np.unique(np.concatenate([windows.origin, windows.target_dates.ravel()]))
    n = len(calendar)
    starts = {  # by hand from the shares: test 15%, calib, val 10%
        "test": int(n * 0.85),
        "calib": int(n * (0.85 - calib_fraction)) if calib_fraction else int(n * 0.85),
        "val": int(n * (0.85 - calib_fraction - 0.1)),
    }
    bounds = {
        "train": (0, starts["val"]),
        "val": (starts["val"], starts["calib"]),
        "calib": (starts["calib"], starts["test"]),
        "test": (starts["test"], n),
    }
    for name, (lo, hi) in bounds.items():
        block = splits[name]
        if name == "calib" and not calib_fraction:
            assert len(block) == 0  # calibration then uses validation
            continue
        first = np.searchsorted(calendar, block.target_dates[:, 0])
        last = np.searchsorted(calendar, block.target_dates[:, -1])
        assert len(block) and last.max() < hi, name  # every target inside the block
        if name != "train":  # the gap: 4 trading days between the block before and this one's targets
            assert first.min() == lo + 4, name
    # Every window belongs to at most one block, and each block to its own time.
    used = sum(len(s) for s in splits.values())
    assert used < len(windows)  # the gaps left windows out
    assert splits["train"].origin.max() < splits["val"].origin.min() < splits["test"].origin.min()
