"""Robust comparisons: the HAC Diebold-Mariano test keeps its size on autocorrelated loss differentials
where the lag-(h-1) version over-rejects, the bootstrap agrees, the MCS keeps the best model and
drops a clearly worse one, and per-ticker wins are counted."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from forecaster.evaluation import comparison as cp


def variance_only_dm(d: np.ndarray) -> tuple[float, float]:
    """The 1-step DM test with the variance of d alone (lag-(h-1) truncation at h = 1), by hand."""
    n = len(d)
    stat = d.mean() / np.sqrt(d.var() / n) * np.sqrt((n - 1) / n)
    return stat, 2 * stats.t.sf(abs(stat), df=n - 1)


def ar1(n_series: int, n: int, phi: float, mean: float = 0.0, seed: int = 0) -> np.ndarray:
    """Stationary AR(1) loss differentials [n_series, n] with unit innovations around `mean`."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_series, n))
    d = np.empty_like(e)
    d[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        d[:, t] = phi * d[:, t - 1] + e[:, t]
    return d + mean


def test_hac_dm_keeps_its_size_where_the_lag_h_minus_1_version_over_rejects():
    d = ar1(500, 500, phi=0.5, seed=1)  # mean 0: the null holds
    hac = np.array([cp.diebold_mariano_hac(x, horizon=1).p_value for x in d])
    truncated = np.array([variance_only_dm(x)[1] for x in d])  # lag 0: the variance of d only
    assert 0.02 <= (hac < 0.05).mean() <= 0.11  # Bartlett with an estimated bandwidth: a little over 5%
    assert (truncated < 0.05).mean() > 0.18  # ignores a long-run variance 3x the variance
    assert (truncated < 0.05).mean() > 2 * (hac < 0.05).mean()


def test_hac_dm_detects_a_real_difference():
    d = ar1(200, 500, phi=0.5, mean=-0.4, seed=2)
    results = [cp.diebold_mariano_hac(x) for x in d]
    assert np.mean([r.p_value < 0.05 for r in results]) > 0.8
    assert all(r.statistic < 0 for r in results if r.p_value < 0.05)  # negative: the model is better


def test_long_run_variance_matches_statsmodels_newey_west():
    d = ar1(1, 400, phi=0.6, seed=3)[0]
    ols = sm.OLS(d, np.ones_like(d)).fit(cov_type="HAC", cov_kwds={"maxlags": 7, "use_correction": False})
    assert cp.long_run_variance(d, 7) == pytest.approx(len(d) * ols.bse[0] ** 2, rel=1e-10)


def test_bandwidth_is_at_least_the_horizon_and_grows_with_persistence():
    white = ar1(1, 500, phi=0.0, seed=4)[0]
    persistent = ar1(1, 500, phi=0.8, seed=4)[0]
    assert cp.diebold_mariano_hac(white, horizon=22).bandwidth == 22
    assert cp.newey_west_bandwidth(persistent) > cp.newey_west_bandwidth(white)
    assert cp.diebold_mariano_hac(white, bandwidth=3).bandwidth == 3


def test_hln_correction_matches_the_existing_dm_at_the_same_lags():
    d = ar1(1, 300, phi=0.3, mean=0.1, seed=5)[0]
    # with the Bartlett weights at bandwidth 0 (the variance alone) both tests are the same at h = 1
    ours = cp.diebold_mariano_hac(d, horizon=1, bandwidth=0)
    assert (ours.statistic, ours.p_value) == pytest.approx(variance_only_dm(d))


def test_dm_matches_a_hand_computation_with_bartlett_weights_and_hln_correction():
    d = np.array([1.0, 2.0, 3.0, 4.0, 0.0])  # mean 2, centred [-1, 0, 1, 2, -2], gamma0 = 2, gamma1 = -0.4
    one = cp.diebold_mariano_hac(d, horizon=1, bandwidth=0)
    expected = 2 / np.sqrt(2 / 5) * np.sqrt((5 + 1 - 2) / 5)
    assert one.statistic == pytest.approx(expected) and one.p_value == pytest.approx(
        2 * stats.t.sf(expected, df=4)
    )
    # bandwidth 1 weighs gamma1 by 1 - 1/2: LRV = 2 + 2 * 0.5 * (-0.4) = 1.6; h = 2 changes the correction
    two = cp.diebold_mariano_hac(d, horizon=2, bandwidth=1)
    assert two.statistic == pytest.approx(2 / np.sqrt(1.6 / 5) * np.sqrt((5 + 1 - 4 + 2 / 5) / 5))
    assert np.isnan(cp.diebold_mariano_hac(np.zeros(10)).p_value)  # identical forecasts: no test


def test_bootstrap_pvalue_agrees_with_hac_in_direction():
    nulls, alternatives = ar1(10, 400, phi=0.5, seed=6), ar1(10, 400, phi=0.5, mean=-0.5, seed=7)
    boot = [cp.bootstrap_pvalue(x, reps=199, seed=i) for i, x in enumerate(np.vstack([nulls, alternatives]))]
    hac = [cp.diebold_mariano_hac(x).p_value for x in np.vstack([nulls, alternatives])]
    assert np.corrcoef(boot, hac)[0, 1] > 0.8
    assert np.mean(np.array(boot[10:]) < 0.05) >= 0.8 and np.mean(np.array(boot[:10]) < 0.05) <= 0.3
    assert cp.bootstrap_pvalue(nulls[0], reps=199, seed=1) == cp.bootstrap_pvalue(nulls[0], reps=199, seed=1)


def test_mcs_keeps_the_best_model_and_drops_a_clearly_worse_one():
    rng = np.random.default_rng(8)
    common = rng.standard_normal(600) ** 2  # losses share the market's bad days
    losses = pd.DataFrame(
        {
            "fuzzy": common + 0.3 * rng.standard_normal(600) ** 2,
            "ewma": common + 0.3 * rng.standard_normal(600) ** 2 + 0.01,
            "naive": common + 0.3 * rng.standard_normal(600) ** 2 + 0.5,
        }
    )
    mcs = cp.model_confidence_set(losses, reps=500, seed=0)
    assert list(mcs.index) == ["fuzzy", "ewma", "naive"]
    assert mcs.loc["fuzzy", "included"] and mcs.loc["fuzzy", "mean_loss"] == mcs["mean_loss"].min()
    assert not mcs.loc["naive", "included"] and mcs.loc["naive", "pvalue"] < 0.01
    assert mcs["pvalue"].max() == 1.0
    again = cp.model_confidence_set(losses, reps=500, seed=0)
    pd.testing.assert_frame_equal(mcs, again)


def test_win_counts_per_ticker_with_ties_and_models_that_never_win():
    losses = pd.DataFrame(
        {
            "ticker": ["A"] * 6 + ["B"] * 3 + ["C"] * 3,
            "model": ["fuzzy", "fuzzy", "naive", "naive", "ewma", "ewma"] + ["fuzzy", "naive", "ewma"] * 2,
            "loss": [1.0, 3.0, 2.0, 2.0, 5.0, 5.0] + [0.5, 0.4, 0.9] + [1.0, 1.0, 2.0],
        }
    )
    wins = cp.win_counts(losses).set_index("model")
    # A: fuzzy and naive tie at mean 2; B: naive; C: fuzzy and naive tie
    assert wins["wins"].to_dict() == {"naive": 3, "fuzzy": 2, "ewma": 0}
    assert (wins["tickers"] == 3).all()


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="non-finite"):
        cp.diebold_mariano_hac([0.1, np.nan, 0.2, 0.3])
    with pytest.raises(ValueError, match="2\\+ models"):
        cp.model_confidence_set(np.ones((10, 1)))
    with pytest.raises(ValueError, match="loss"):
        cp.win_counts(pd.DataFrame({"ticker": [], "model": []}))
    assert np.isnan(cp.diebold_mariano_hac(np.zeros(10)).statistic)
