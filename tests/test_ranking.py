"""M6's ranked probability score, and the one-factor volatility baseline for quintile ranks."""

import numpy as np
import pandas as pd
import pytest

from forecaster.evaluation.ranking import factor_rank_probabilities, realised_quintiles, rps, rps_per_asset

UNIFORM = 0.2


def test_rps_matches_a_hand_worked_example():
    returns = np.array([0.05, -0.02, 0.10, 0.00, -0.08])  # realised quintiles 4, 2, 5, 3, 1
    probs = np.full((5, 5), UNIFORM)
    probs[0] = [0, 0, 0, 1, 0]  # right: 0
    probs[4] = [0.5, 0.5, 0, 0, 0]  # cumulative [.5, 1, 1, 1, 1] vs [1, 1, 1, 1, 1]: 0.25 / 5
    # uniform with realised quintile 2: (.04 + .36 + .16 + .04) / 5; quintile 5: (.04 + .16 + .36 + .64) / 5;
    # quintile 3: (.04 + .16 + .16 + .04) / 5
    per_asset = [0.0, 0.12, 0.24, 0.08, 0.05]
    np.testing.assert_allclose(rps_per_asset(probs, returns), per_asset)
    assert rps(probs, returns) == pytest.approx(0.098)


@pytest.mark.parametrize("n", [5, 10, 100])
def test_uniform_probabilities_score_0_16(n):
    returns = np.random.default_rng(n).standard_normal(n)
    assert rps(np.full((n, 5), UNIFORM), returns) == pytest.approx(0.16)


def test_a_perfect_forecast_scores_0():
    returns = np.random.default_rng(1).standard_normal(20)
    assert rps(realised_quintiles(returns), returns) == 0.0


def test_ties_share_the_positions_of_their_group():
    returns = np.array([0.1, 0.1, -0.2, 0.3, 0.0])  # the tied pair holds positions 3 and 4
    np.testing.assert_allclose(
        realised_quintiles(returns),
        [[0, 0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 1, 0, 0, 0]],
    )
    # ten assets: positions 1-2 are quintile 1, 3-4 quintile 2; a tie over positions 2..4 splits 1/3, 2/3
    returns = np.array([-1.0, 0.0, 0.0, 0.0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(realised_quintiles(returns)[1], [1 / 3, 2 / 3, 0, 0, 0])
    np.testing.assert_allclose(realised_quintiles(returns).sum(axis=0), 2.0)


def history(days: int = 300, n: int = 10, seed: int = 0) -> pd.DataFrame:
    """Daily log returns of a market factor plus noise, idiosyncratic volatility rising with the column."""
    rng = np.random.default_rng(seed)
    market = 0.01 * rng.standard_normal((days, 1))
    noise = rng.standard_normal((days, n)) * np.linspace(0.005, 0.04, n)
    return pd.DataFrame(
        market + noise, index=pd.bdate_range("2016-01-04", periods=days), columns=list("ABCDEFGHIJ")
    )


@pytest.mark.parametrize("innovations", ["normal", "t"])
def test_factor_baseline_probabilities_are_valid_and_volatile_tickers_land_in_the_extremes(innovations):
    probs = factor_rank_probabilities(history(), horizon=20, innovations=innovations, n_paths=4000, seed=2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs.sum(axis=0), 2.0)
    extremes = probs[:, [0, 4]].sum(axis=1)
    assert extremes[-1] > 0.6 > 0.4 > extremes[0]


def test_factor_baseline_is_causal():
    returns = history(days=320)
    as_of = returns.index[299]
    past = factor_rank_probabilities(returns.iloc[:300], horizon=5, n_paths=1000, seed=3)
    full = factor_rank_probabilities(returns, horizon=5, as_of=as_of, n_paths=1000, seed=3)
    np.testing.assert_array_equal(past, full)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"probabilities must be \[N=5, 5\]"):
        rps(np.full((4, 5), UNIFORM), np.arange(5.0))
    with pytest.raises(ValueError, match="df > 2"):
        factor_rank_probabilities(history(), horizon=5, innovations="t", df=2.0)
