import numpy as np
import pytest

from forecaster.features.volatility import PRIOR_VOL, VOL_FLOOR, ewma_volatility, realized_volatility


def _ewma_loop(r: np.ndarray, lam: float, warmup: int) -> np.ndarray:
    """The definition, one day at a time."""
    var, out, total = None, [], PRIOR_VOL**2
    for t, x in enumerate(r):
        if t < warmup:
            total += x * x
            var = total / (t + 2)  # expanding mean with the prior counted as one day
        else:
            var = lam * var + (1 - lam) * x * x
        out.append(np.sqrt(var))
    return np.array(out)


@pytest.mark.parametrize(
    ("n", "lam", "warmup"), [(300, 0.94, 20), (50, 0.97, 5), (10, 0.94, 20), (1, 0.94, 20)]
)
def test_ewma_matches_the_recursion_written_as_a_loop(n, lam, warmup):
    r = np.random.default_rng(n).standard_t(4, n) * 0.02
    np.testing.assert_allclose(ewma_volatility(r, lam, warmup=warmup), _ewma_loop(r, lam, warmup), rtol=1e-12)


def test_realized_volatility_is_the_trailing_root_mean_square():
    r = np.random.default_rng(1).normal(0, 0.01, 100)
    rv = realized_volatility(r, 22)
    for t in (21, 50, 99):
        np.testing.assert_allclose(rv[t], np.sqrt(np.mean(r[t - 21 : t + 1] ** 2)), rtol=1e-12)
    np.testing.assert_allclose(rv[3], np.sqrt((PRIOR_VOL**2 + np.sum(r[:4] ** 2)) / 5), rtol=1e-12)


@pytest.mark.parametrize("estimate", [ewma_volatility, lambda r: realized_volatility(r, 5)])
def test_volatility_at_t_ignores_returns_after_t(estimate):
    r = np.random.default_rng(2).normal(0, 0.01, 200)
    for t in (0, 3, 19, 20, 120):
        changed = r.copy()
        changed[t + 1 :] = np.random.default_rng(t).normal(0, 0.05, len(r) - t - 1)
        np.testing.assert_array_equal(estimate(changed)[: t + 1], estimate(r)[: t + 1])


def test_ewma_forgets_its_start_and_tracks_a_volatility_break():
    r = np.concatenate(
        [np.random.default_rng(3).normal(0, 0.01, 500), np.random.default_rng(4).normal(0, 0.04, 200)]
    )
    sigma = ewma_volatility(r)
    assert 0.007 < np.median(sigma[100:500]) < 0.013
    assert 0.03 < np.median(sigma[600:]) < 0.05


def test_zero_returns_stay_finite():
    assert np.all(realized_volatility(np.zeros(30), 5)[4:] == VOL_FLOOR)  # after the warm-up
    assert np.isfinite(np.log(ewma_volatility(np.zeros(30)))).all()
