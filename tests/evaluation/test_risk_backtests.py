"""VaR and ES backtests: size near nominal on a correctly specified model, power against a misspecified
one, the published Kupiec and Basel tables, the Z2 ES test, and finite statistics at the edges."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation import risk_backtests as rb

N_SIMS, T, ALPHA = 1000, 500, 0.05
LEVELS_TO_2_5 = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)  # a set whose tails stop at 2.5%


def size_band(n_sims: int = N_SIMS, level: float = 0.05) -> tuple[float, float]:
    """Rejection rates a test of exact size `level` gives with probability 99.9% over n_sims runs."""
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n_sims, level)
    return lo / n_sims, hi / n_sims


@pytest.fixture(scope="module")
def correct_model():
    """Outcomes sigma_t * N(0, 1) with a known, varying sigma_t and the true VaR: [N_SIMS, T] each."""
    rng = np.random.default_rng(1)
    sigma = np.exp(0.3 * rng.standard_normal((N_SIMS, T)))
    y = sigma * rng.standard_normal((N_SIMS, T))
    return y, sigma * stats.norm.ppf(ALPHA)


def dq_pvalues(y, var) -> np.ndarray:
    return np.array(
        [rb.dynamic_quantile(rb.violations(a, b), b, ALPHA).p_value for a, b in zip(y, var, strict=True)]
    )


def test_size_near_nominal_for_the_true_quantile(correct_model):
    y, var = correct_model
    hits = rb.violations(y, var)
    ind, cc = rb.christoffersen(hits, ALPHA)
    lo, hi = size_band()
    for name, p in [
        ("kupiec", rb.kupiec_pof(hits, ALPHA).p_value),
        ("christoffersen ind", ind.p_value),
        ("christoffersen cc", cc.p_value),
        ("dq", dq_pvalues(y, var)),
    ]:
        assert lo <= (p < 0.05).mean() <= hi, name


def test_power_against_quantiles_30_percent_too_narrow(correct_model):
    y, var = correct_model
    narrow = 0.7 * var  # rate Phi(0.7 * -1.645) = 12.5% instead of 5%
    hits = rb.violations(y, narrow)
    assert (rb.kupiec_pof(hits, ALPHA).p_value < 0.05).mean() > 0.95
    assert (rb.christoffersen(hits, ALPHA)[1].p_value < 0.05).mean() > 0.95
    assert (dq_pvalues(y[:200], narrow[:200]) < 0.05).mean() > 0.95


def test_independence_rejects_clustered_violations_at_the_right_rate():
    """Markov hits with P(hit | hit) = 0.3 and the nominal 5% unconditional rate."""
    rng = np.random.default_rng(2)
    p11 = 0.3
    p01 = ALPHA * (1 - p11) / (1 - ALPHA)  # stationary rate p01 / (p01 + 1 - p11) = ALPHA
    u = rng.uniform(size=(N_SIMS, T))
    hits = np.zeros((N_SIMS, T), dtype=bool)
    hits[:, 0] = u[:, 0] < ALPHA
    for t in range(1, T):
        hits[:, t] = u[:, t] < np.where(hits[:, t - 1], p11, p01)
    ind, cc = rb.christoffersen(hits, ALPHA)
    assert (ind.p_value < 0.05).mean() > 0.8
    assert (cc.p_value < 0.05).mean() > 0.8
    assert (rb.kupiec_pof(hits, ALPHA).p_value < 0.05).mean() < 0.25  # the rate itself is right


def test_kupiec_by_hand_250_days_at_99_percent_with_7_exceptions():
    x, n, a = 7, 250, 0.01
    hand = -2 * (
        (n - x) * math.log(1 - a) + x * math.log(a) - (n - x) * math.log(1 - x / n) - x * math.log(x / n)
    )
    result = rb.kupiec_pof(np.r_[np.ones(x, bool), np.zeros(n - x, bool)], a)
    assert result.statistic == pytest.approx(hand, rel=1e-12)
    assert result.statistic == pytest.approx(5.497, abs=1e-3)
    assert result.p_value == pytest.approx(stats.chi2.sf(hand, 1))


# Kupiec (1995), reproduced in Jorion, "Value at Risk", table "Model verification based on failure
# rates": the exception counts N not rejected at 95% confidence, as (lowest, highest).
KUPIEC_REGIONS = {
    (0.01, 510): (2, 10),
    (0.01, 1000): (5, 16),
    (0.025, 255): (3, 11),
    (0.025, 510): (7, 20),
    (0.025, 1000): (16, 35),
    (0.05, 255): (7, 20),
    (0.05, 510): (17, 35),
    (0.05, 1000): (38, 64),
    (0.075, 255): (12, 27),
    (0.075, 510): (28, 50),
    (0.075, 1000): (60, 91),
    (0.1, 255): (17, 35),
    (0.1, 510): (39, 64),
    (0.1, 1000): (82, 119),
}


@pytest.mark.parametrize(("alpha", "n"), sorted(KUPIEC_REGIONS))
def test_kupiec_non_rejection_regions_match_the_published_table(alpha, n):
    counts = np.arange(n + 1)
    hits = np.arange(n)[None, :] < counts[:, None]  # row x has x exceptions
    accepted = counts[rb.kupiec_pof(hits, alpha).p_value > 0.05]
    assert (accepted.min(), accepted.max()) == KUPIEC_REGIONS[(alpha, n)]
    assert np.all(np.diff(accepted) == 1)


def test_christoffersen_by_hand_on_known_transitions():
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0], dtype=bool)  # 00 01 11 10 00 00 01 10 00 01 10
    n00, n01, n10, n11 = 4, 3, 3, 1
    p0, p1, p = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 11
    hand = -2 * (
        (n00 + n10) * math.log(1 - p)
        + (n01 + n11) * math.log(p)
        - n00 * math.log(1 - p0)
        - n01 * math.log(p0)
        - n10 * math.log(1 - p1)
        - n11 * math.log(p1)
    )
    ind, cc = rb.christoffersen(hits, 0.1)
    assert ind.statistic == pytest.approx(hand, rel=1e-12)
    assert cc.statistic == pytest.approx(hand + rb.kupiec_pof(hits, 0.1).statistic, rel=1e-12)
    assert cc.p_value == pytest.approx(stats.chi2.sf(cc.statistic, 2))


def test_basel_zones_come_from_the_binomial():
    assert rb.basel_zone_thresholds(250, 0.01) == (4, 9)
    # Basel Committee (1996), table 1: cumulative probabilities of 0..10 exceptions in 250 days
    published = [8.11, 28.58, 54.32, 75.81, 89.22, 95.88, 98.63, 99.60, 99.89, 99.97, 99.99]
    assert np.round(100 * stats.binom.cdf(np.arange(11), 250, 0.01), 2).tolist() == published


def test_traffic_light_counts_rolling_windows():
    hits = np.zeros(300, dtype=bool)
    hits[[10, 20, 30, 40]] = True  # 4 exceptions: green while all are inside the window
    hits[[260, 261, 262, 263, 264, 265]] = True
    light = rb.traffic_light(pd.Series(hits, index=pd.RangeIndex(1000, 1300)))
    assert len(light.windows) == 51 and sum(light.counts.values()) == 51
    first, last = light.windows.iloc[0], light.windows.iloc[-1]
    assert (first["end"], first["exceptions"], first["zone"]) == (1249, 4, "green")
    assert (last["exceptions"], last["zone"]) == (6, "yellow")  # days 50..299: 6 late exceptions
    assert light.counts["red"] == light.windows["exceptions"].ge(10).sum()
    assert rb.traffic_light(hits[:100]).counts == {"green": 0, "yellow": 0, "red": 0}


@pytest.mark.parametrize("all_hits", [False, True])
def test_no_violations_or_all_violations_give_finite_statistics(all_hits):
    hits = np.full(250, all_hits)
    var = np.full(250, -2.33)
    pof = rb.kupiec_pof(hits, 0.01)
    ind, cc = rb.christoffersen(hits, 0.01)
    dq = rb.dynamic_quantile(hits, var, 0.01)
    values = [pof.statistic, pof.p_value, *ind, *cc, *dq]
    assert np.all(np.isfinite(values))
    expected = -2 * 250 * math.log(0.01 if all_hits else 0.99)
    assert pof.statistic == pytest.approx(expected)
    assert ind.statistic == 0.0
    assert rb.christoffersen(np.array([True]), 0.01)[0] == (0.0, 1.0)  # no consecutive pairs


def test_expected_shortfall_integrates_the_quantile_function():
    levels = np.linspace(0.001, 0.999, 999)
    quantiles = stats.norm.ppf(levels)[None, :]
    for alpha in (0.01, 0.025, 0.05):
        true = -stats.norm.pdf(stats.norm.ppf(alpha)) / alpha
        assert rb.expected_shortfall(quantiles, levels, alpha)[0] == pytest.approx(true, rel=5e-3)
        assert rb.expected_shortfall(quantiles, levels, alpha, "upper")[0] == pytest.approx(-true, rel=5e-3)
    # levels that stop at 2.5%: the exponential tail makes ES a little conservative, not wild
    coarse = rb.expected_shortfall(stats.norm.ppf(LEVELS_TO_2_5), LEVELS_TO_2_5, 0.025)[0]
    assert -2.338 * 1.05 < coarse < -2.338


def z2_null_and_fat_tail(n: int, n_sims: int, seed: int = 3):
    """Forecast N(0, 1) at 2.5%; outcomes from it, and from a t(3) with the same 2.5% quantile."""
    a = 0.025
    z = stats.norm.ppf(a)
    var, es = np.full(n, z), np.full(n, -stats.norm.pdf(z) / a)
    rng = np.random.default_rng(seed)
    fat = z / stats.t.ppf(a, 3) * rng.standard_t(3, size=(n_sims, n))  # same VaR, ES 3.10 not 2.34
    return rng.standard_normal((n_sims, n)), fat, var, es


def test_z2_is_near_zero_under_the_null_and_rejects_a_fatter_tail_than_forecast():
    null, fat, var, es = z2_null_and_fat_tail(2500, 400)
    sampler = lambda rng, n_sims: rng.standard_normal((n_sims, 2500))
    first = rb.es_backtest(null[0], var, es, sampler=sampler, n_sims=2000)
    assert abs(first.z2) < 0.3 and first.p_value > 0.05
    z_null, z_fat = rb.acerbi_szekely_z2(null, var, es, 0.025), rb.acerbi_szekely_z2(fat, var, es, 0.025)
    assert abs(z_null.mean()) < 0.03
    assert np.mean(z_null < first.critical_value) < size_band(400)[1]
    assert np.mean(z_fat < first.critical_value) > 0.6  # while Kupiec sees the right VaR:
    assert np.mean(rb.kupiec_pof(fat < var, 0.025).p_value < 0.05) < 0.15


def test_es_backtest_from_forecast_quantiles():
    levels = np.array(DEFAULT_LEVELS)
    quantiles = np.tile(stats.norm.ppf(levels), (1000, 1))
    var, es = quantiles[:, DEFAULT_LEVELS.index(0.025)], rb.expected_shortfall(quantiles, levels, 0.025)
    sampler = rb.quantile_sampler(quantiles, levels)
    rng = np.random.default_rng(5)  # seed 4's normal sample sits at p 0.05-0.07: a 1-in-15 draw, not a bug
    assert rb.es_backtest(rng.standard_normal(1000), var, es, sampler=sampler, n_sims=1000).p_value > 0.05
    assert rb.es_backtest(rng.standard_t(3, 1000), var, es, sampler=sampler, n_sims=1000).p_value < 0.01
    draws = sampler(rng, 200).ravel()
    assert np.mean(draws < var[0]) == pytest.approx(0.025, abs=0.003)


def test_student_t_sampler_has_unit_variance():
    draws = rb.student_t_sampler(np.zeros(100), np.full(100, 2.0), df=5)(np.random.default_rng(5), 2000)
    assert draws.shape == (2000, 100) and draws.std() == pytest.approx(2.0, rel=0.03)


def test_risk_table_from_a_backtest_frame_covers_both_tails_and_skips_missing_levels():
    rng = np.random.default_rng(6)
    n = 600
    frame = pd.DataFrame(
        {
            "origin": pd.bdate_range("2020-01-01", periods=n),
            "actual_log_return": 0.01 * rng.standard_normal(n),
        }
    )
    for level in LEVELS_TO_2_5:
        frame[f"q_{level:g}"] = 0.01 * stats.norm.ppf(level)
    table = rb.risk_table(frame.sample(frac=1, random_state=0))  # shuffled: sorted by origin inside
    assert sorted(zip(table["tail"], table["alpha"], strict=True)) == [
        ("lower", 0.025),
        ("lower", 0.05),
        ("upper", 0.025),
        ("upper", 0.05),
    ]  # 1% lies outside 2.5%..97.5%
    assert (table["n"] == n).all() and np.isfinite(table.drop(columns="tail").to_numpy(float)).all()
    lower = table[(table["tail"] == "lower") & (table["alpha"] == 0.05)].iloc[0]
    y = frame["actual_log_return"].to_numpy()
    assert lower["violations"] == int((y < frame["q_0.05"].to_numpy()).sum())
    hits = y < frame["q_0.05"].to_numpy()
    assert lower["dq_stat"] == pytest.approx(
        rb.dynamic_quantile(hits, frame["q_0.05"].to_numpy(), 0.05).statistic
    )
    grouped = rb.risk_table(pd.concat([frame.assign(model="a"), frame.assign(model="b")]), by=["model"])
    assert len(grouped) == 8 and set(grouped["model"]) == {"a", "b"}


def test_upper_tail_is_the_mirror_image_of_the_lower_tail():
    rng = np.random.default_rng(7)
    y = rng.standard_normal(400)
    levels = np.array(DEFAULT_LEVELS)
    quantiles = np.tile(stats.norm.ppf(levels), (400, 1))
    upper = rb.risk_table((y, quantiles, levels), alphas=(0.05,), tails=("upper",))
    mirrored = rb.risk_table((-y, -quantiles[:, ::-1], 1 - levels[::-1]), alphas=(0.05,), tails=("lower",))
    columns = ["violations", "kupiec_lr", "cc_lr", "dq_stat"]
    np.testing.assert_allclose(upper[columns].to_numpy(float), mirrored[columns].to_numpy(float))


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="tail"):
        rb.violations([0.0], [0.0], "left")
    with pytest.raises(ValueError, match="empty"):
        rb.kupiec_pof([], 0.01)
    with pytest.raises(ValueError, match="lags"):
        rb.dynamic_quantile(np.zeros(5, bool), np.zeros(5), 0.01)
    with pytest.raises(ValueError, match="actual_log_return"):
        rb.risk_table(pd.DataFrame({"x": [1.0]}))
