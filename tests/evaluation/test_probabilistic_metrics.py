"""Pinball loss, Winkler score, coverage and reliability: hand-computed, then against scoringrules."""

import numpy as np
import pytest
import scoringrules as sr

from forecaster.metrics import coverage, pinball_loss, pinball_losses, quantile_hit_rates, winkler_score

LEVELS = [0.1, 0.5, 0.9]
Y = np.array([0.0, 3.0])
Q = np.array([[-1.0, 0.5, 2.0], [-1.0, 0.5, 2.0]])


def test_pinball_loss_matches_hand_computation():
    # y=0: 0.1*(0+1) = 0.1; (1-0.5)*0.5 = 0.25; (1-0.9)*2 = 0.2
    # y=3: 0.1*4 = 0.4; 0.5*2.5 = 1.25; 0.9*1 = 0.9
    np.testing.assert_allclose(pinball_losses(Y, Q, LEVELS), [[0.1, 0.25, 0.2], [0.4, 1.25, 0.9]])
    assert pinball_loss(Y, Q, LEVELS) == pytest.approx(3.1 / 6)
    np.testing.assert_allclose(pinball_loss(Y, Q, LEVELS, per_level=True), [0.25, 0.75, 0.55])


def test_pinball_loss_keeps_leading_shapes_and_nan():
    y = np.array([[0.0, np.nan]])  # [N=1, H=2]
    q = np.zeros((1, 2, 3))
    losses = pinball_losses(y, q, LEVELS)
    assert losses.shape == (1, 2, 3) and np.isnan(losses[0, 1]).all() and (losses[0, 0] == 0).all()


def test_winkler_score_and_coverage_match_hand_computation():
    y = np.array([0.0, 2.0, -3.0, 1.0])
    lower, upper = np.full(4, -1.0), np.full(4, 1.0)
    # width 2 everywhere; misses pay 2/0.2 = 10 per unit: 2, 2 + 10*1, 2 + 10*2, 2 (bound is inside)
    assert winkler_score(y, lower, upper, alpha=0.2) == pytest.approx((2 + 12 + 22 + 2) / 4)
    assert coverage(y, lower, upper) == 0.5


def test_quantile_hit_rates_count_outcomes_at_or_below_each_quantile():
    np.testing.assert_allclose(quantile_hit_rates(Y, Q), [0.0, 0.5, 0.5])
    np.testing.assert_allclose(quantile_hit_rates(np.array([0.5]), np.array([[0.5, 0.6]])), [1.0, 1.0])


def test_scores_agree_with_scoringrules_on_random_forecasts():
    rng = np.random.default_rng(0)
    y = rng.standard_t(4, 500)
    levels = np.array([0.025, 0.1, 0.5, 0.9, 0.975])
    q = np.sort(rng.normal(0, 1.5, (500, 5)), axis=1)
    reference = np.stack(
        [sr.quantile_score(y, q[:, j], tau, backend="numpy") for j, tau in enumerate(levels)], 1
    )
    np.testing.assert_allclose(pinball_losses(y, q, levels), reference, rtol=1e-12)
    lower, upper = q[:, 1], q[:, 3]
    expected = sr.interval_score(y, lower, upper, 0.2, backend="numpy").mean()
    assert winkler_score(y, lower, upper, 0.2) == pytest.approx(expected, rel=1e-12)
