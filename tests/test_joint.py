"""The joint forecast: marginals from quantiles, a causal shrunk copula, risk and quintile ranks."""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from forecaster import joint

LEVELS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)


def normal_quantiles(sigma, mean=0.0, levels=LEVELS) -> np.ndarray:
    """[N, Q] quantiles of normal marginals with the given scales."""
    return mean + np.asarray(sigma, dtype=float)[:, None] * stats.norm.ppf(levels)[None, :]


def correlated_returns(corr: np.ndarray, days: int, seed: int = 0, start: str = "2015-01-01") -> pd.DataFrame:
    """Daily log returns with a known correlation and ticker volatilities 1%..2%, as a wide frame."""
    rng = np.random.default_rng(seed)
    n = len(corr)
    draws = rng.standard_normal((days, n)) @ np.linalg.cholesky(corr).T * np.linspace(0.01, 0.02, n)
    columns = [f"T{j}" for j in range(n)]
    return pd.DataFrame(draws, index=pd.bdate_range(start, periods=days), columns=columns)


def equicorrelation(n: int, rho: float) -> np.ndarray:
    corr = np.full((n, n), rho)
    np.fill_diagonal(corr, 1.0)
    return corr


@pytest.mark.parametrize("df", [None, 6.0])
def test_simulated_marginals_reproduce_the_input_quantiles(df):
    quantiles = normal_quantiles([0.02, 0.05, 0.1]) + np.array([[0.0], [0.01], [-0.02]])
    copula = joint.Copula(df=df).fit(correlated_returns(equicorrelation(3, 0.6), 300))
    draws = joint.simulate_returns(quantiles, LEVELS, copula, n_paths=20_000, seed=1)  # [S, N]
    hit = (draws[:, :, None] <= quantiles[None]).mean(axis=0)  # [N, Q]
    levels = np.array(LEVELS)
    monte_carlo_error = np.sqrt(levels * (1 - levels) / 20_000)  # at most 0.0035, at the median
    assert np.all(np.abs(hit - levels) < 4 * monte_carlo_error)


def test_a_known_level_maps_to_its_own_quantile_and_tails_are_heavier_than_normal():
    quantiles = normal_quantiles([0.05])
    u = np.array([[0.025], [0.5], [0.975], [0.001], [0.999]])
    exponential = joint.marginal_returns(u, quantiles, LEVELS)[:, 0]
    normal = joint.marginal_returns(u, quantiles, LEVELS, tail="normal")[:, 0]
    np.testing.assert_allclose(exponential[:3], quantiles[0, [0, 4, 8]], atol=1e-12)
    assert exponential[3] < normal[3] < quantiles[0, 0]  # the lower tail reaches further down
    assert exponential[4] > normal[4] > quantiles[0, -1]
    # the tail meets the inner segment without a jump in the density
    eps = 1e-7
    inner = joint.marginal_returns(np.array([[0.025 + eps]]), quantiles, LEVELS)[0, 0]
    outer = joint.marginal_returns(np.array([[0.025 - eps]]), quantiles, LEVELS)[0, 0]
    assert inner - quantiles[0, 0] == pytest.approx(quantiles[0, 0] - outer, rel=1e-3)


@pytest.mark.parametrize("shrinkage", ["ledoit_wolf", "factor"])
def test_a_known_correlation_is_recovered(shrinkage):
    corr = equicorrelation(4, 0.6)  # one factor, so both shrinkage targets can hold it
    copula = joint.Copula(df=None, window=2000, shrinkage=shrinkage).fit(
        correlated_returns(corr, 2000, seed=3)
    )
    u = copula.sample(20_000, seed=4)  # [S, N]
    scores = special.ndtri(u)
    recovered = np.corrcoef(scores, rowvar=False)
    assert np.abs(recovered - corr).max() < 0.06


def test_hundreds_of_tickers_on_a_short_window_stay_positive_definite():
    returns = correlated_returns(equicorrelation(120, 0.3), 80, seed=5)
    for shrinkage in ("ledoit_wolf", "factor"):
        copula = joint.Copula(window=80, shrinkage=shrinkage, min_periods=40).fit(returns)
        assert np.linalg.eigvalsh(copula.correlation_).min() > 1e-6
        assert np.allclose(np.diag(copula.correlation_), 1.0)


def test_the_correlation_reads_only_rows_up_to_the_as_of_date():
    returns = correlated_returns(equicorrelation(5, 0.4), 400, seed=6)
    as_of = returns.index[299]
    garbled = returns.copy()
    garbled.iloc[300:] = np.random.default_rng(7).standard_normal((100, 5))  # a different future
    garbled.iloc[350:, 2] = np.nan
    a = joint.Copula(window=250).fit(returns, as_of=as_of)
    b = joint.Copula(window=250).fit(garbled, as_of=as_of)
    np.testing.assert_array_equal(a.correlation_, b.correlation_)
    assert a.as_of_ == as_of and a.n_obs_ == 250


def test_ranks_are_causal():
    returns = correlated_returns(equicorrelation(10, 0.5), 300, seed=8)
    as_of = returns.index[249]
    quantiles = normal_quantiles(np.linspace(0.02, 0.08, 10))
    past = joint.Copula().fit(returns.iloc[:250], as_of=as_of)
    full = joint.Copula().fit(returns, as_of=as_of)
    p_past = joint.rank_probabilities(joint.simulate_returns(quantiles, LEVELS, past, n_paths=2000, seed=9))
    p_full = joint.rank_probabilities(joint.simulate_returns(quantiles, LEVELS, full, n_paths=2000, seed=9))
    np.testing.assert_array_equal(p_past, p_full)


def test_rank_probabilities_sum_to_one_per_ticker_and_n_over_5_per_quintile():
    quantiles = normal_quantiles(np.linspace(0.01, 0.1, 10), mean=np.linspace(-0.02, 0.02, 10)[:, None])
    copula = joint.Copula().fit(correlated_returns(equicorrelation(10, 0.3), 200, seed=10))
    probs = joint.rank_probabilities(joint.simulate_returns(quantiles, LEVELS, copula, n_paths=4000, seed=11))
    assert probs.shape == (10, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs.sum(axis=0), 2.0)
    assert probs[0, 0] > probs[0, 4] and probs[-1, 4] > probs[-1, 0]  # the widest ticker lands in extremes


def test_quintiles_follow_ceil_of_5_rank_over_n():
    draws = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0]])  # one path, N = 7: ranks 7..1
    probs = joint.rank_probabilities(draws)
    expected = np.ceil(5 * np.arange(7, 0, -1) / 7).astype(int)  # quintile of each ticker
    np.testing.assert_array_equal(probs.argmax(axis=1) + 1, expected)


def test_portfolio_of_one_ticker_with_weight_one_has_that_tickers_var_and_es():
    copula = joint.Copula().fit(correlated_returns(equicorrelation(3, 0.5), 250, seed=12))
    draws = joint.simulate_returns(
        normal_quantiles([0.03, 0.05, 0.08]), LEVELS, copula, n_paths=5000, seed=13
    )
    var, es = joint.ticker_risk(draws)
    single = joint.portfolio_risk(draws, weights=[0.0, 1.0, 0.0])
    np.testing.assert_allclose(single.var, var[1])
    np.testing.assert_allclose(single.es, es[1])
    assert np.all(var > 0) and np.all(es >= var)


def test_component_es_sums_to_portfolio_es_and_diversification_lowers_it():
    copula = joint.Copula().fit(correlated_returns(equicorrelation(4, 0.3), 250, seed=14))
    draws = joint.simulate_returns(normal_quantiles([0.04] * 4), LEVELS, copula, n_paths=5000, seed=15)
    risk = joint.portfolio_risk(draws, alphas=(0.01, 0.05))
    np.testing.assert_allclose(risk.component_es.sum(axis=0), risk.es, rtol=1e-12)
    _, es = joint.ticker_risk(draws, alphas=(0.01, 0.05))
    assert np.all(risk.es < es.mean(axis=0))


def test_draws_are_seeded_and_horizons_come_from_the_model():
    copula = joint.Copula().fit(correlated_returns(equicorrelation(3, 0.5), 200, seed=16))
    quantiles = np.stack(
        [normal_quantiles([0.01, 0.02, 0.03]) * np.sqrt(h) for h in (1, 2, 3)], axis=1
    )  # [N, H, Q]
    a = joint.simulate_returns(quantiles, LEVELS, copula, horizon=3, n_paths=100, seed=17)
    b = joint.simulate_returns(quantiles, LEVELS, copula, horizon=3, n_paths=100, seed=17)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="outside the model's 1..3"):
        joint.simulate_returns(quantiles, LEVELS, copula, horizon=5)


def test_bad_inputs_are_named():
    quantiles = normal_quantiles([0.02, 0.03])
    quantiles[1, [3, 4]] = quantiles[1, [4, 3]]
    with pytest.raises(ValueError, match=r"ticker\(s\) \[1\]"):
        joint.marginal_returns(np.full((2, 2), 0.5), quantiles, LEVELS)
    short = correlated_returns(equicorrelation(2, 0.1), 100).iloc[:30]
    with pytest.raises(ValueError, match="fewer than 60 daily returns .* T0, T1"):
        joint.Copula().fit(short)


def test_m6_frame_has_the_template_layout(tmp_path):
    probs = np.full((5, 5), 0.2)
    frame = joint.m6_frame(["A", "B", "C", "D", "E"], probs)
    path = tmp_path / "submission.csv"
    frame.to_csv(path, index=False)
    assert path.read_text().splitlines()[0] == "ID,Rank1,Rank2,Rank3,Rank4,Rank5"
    with pytest.raises(ValueError, match=r"sum to 1 .*\['A'\]"):
        joint.m6_frame(["A", "B", "C", "D", "E"], probs * np.array([[2.0]] + [[1.0]] * 4))


def test_t_copula_scores_match_the_exact_transform():
    copula = joint.Copula(df=4.0).fit(correlated_returns(equicorrelation(3, 0.5), 200, seed=18))
    scores = copula.sample_scores(50_000, seed=19)
    rng = np.random.default_rng(19)  # the same draws, transformed exactly
    t = rng.standard_normal((50_000, 3)) @ copula.cholesky_.T / np.sqrt(rng.chisquare(4.0, (50_000, 1)) / 4.0)
    np.testing.assert_allclose(scores, special.ndtri(special.stdtr(4.0, t)), atol=1e-5)
    np.testing.assert_array_equal(copula.sample(10, seed=1), special.ndtr(copula.sample_scores(10, seed=1)))
