"""Quintile-rank forecasts judged as in the M6 competition (RPS), and a one-factor volatility baseline.

M6's ranked probability score. Over one period, each asset's percentage return ranks it in the
universe: positions 1..N from the lowest return, ties taking the lowest position of their group
(`rank(method="min")`), and position p falls in quintile ceil(5 p / N) (Rank1 the worst fifth).
Tied assets share a group of positions p..p+k-1 and each gets the average of those positions'
one-hot quintiles, so a tie across a quintile boundary splits the asset between the two quintiles.
This follows the organisers' R script (`RPS and IR calculation.R` in Mcompetitions/M6-methods),
which averages over the group's positions; their Python port's if/elif keeps only the first
quintile the group touches, a slip that drops the rest of the group's mass. The score of an asset
is the mean over the 5 ranks of the squared gap between the cumulative forecast probabilities and
the cumulative realised ones; the RPS is the mean over assets. Ranks of log returns equal those of
percentage returns, so either may be given. Uniform probabilities score 0.16 when 5 divides N.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from forecaster.features.volatility import LAMBDA, WARMUP, ewma_variance
from forecaster.joint import N_QUINTILES, rank_probabilities, trailing_returns


def realised_quintiles(returns) -> np.ndarray:
    """The realised quintile of each asset, one-hot with ties shared by M6's rule: [N] -> [N, 5]."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or len(r) < N_QUINTILES or not np.all(np.isfinite(r)):
        raise ValueError(f"returns must be {N_QUINTILES} or more finite period returns [N], got {r.shape}")
    n = len(r)
    first = stats.rankdata(r, method="min")  # [N] lowest position of each tie group
    last = stats.rankdata(r, method="max")  # [N] highest position
    bounds = (
        np.arange(N_QUINTILES + 1) * n
    ) // N_QUINTILES  # [6] quintile k holds positions bounds[k-1]+1..bounds[k]
    # positions of the group at or below each bound, as a share of the group: the cumulative target
    below = np.clip(bounds[None, :] - first[:, None] + 1, 0, (last - first + 1)[:, None])  # [N, 6]
    return np.diff(below / (last - first + 1)[:, None], axis=1)


def rps(probabilities, returns) -> float:
    """M6 ranked probability score of quintile probabilities [N, 5] against period returns [N]."""
    p = np.asarray(probabilities, dtype=np.float64)
    target = realised_quintiles(returns)  # [N, 5]
    if p.shape != target.shape:
        raise ValueError(f"probabilities must be [N={len(target)}, 5], got shape {p.shape}")
    return float(np.mean((np.cumsum(p, axis=1) - np.cumsum(target, axis=1)) ** 2))


def rps_per_asset(probabilities, returns) -> np.ndarray:
    """Each asset's RPS: [N] (their mean is `rps`)."""
    p = np.asarray(probabilities, dtype=np.float64)
    target = realised_quintiles(returns)
    return np.mean((np.cumsum(p, axis=1) - np.cumsum(target, axis=1)) ** 2, axis=1)


def _last_ewma_variance(x: np.ndarray) -> np.ndarray:
    """EWMA variance after the last row of daily returns [T, ...] (NaN as no news): [...]."""
    r2 = np.moveaxis(np.nan_to_num(np.square(x)), 0, -1)  # [..., T]
    start = np.maximum(r2[..., :WARMUP].mean(axis=-1), 1e-12)
    return ewma_variance(r2, LAMBDA, start)[..., -1]


def factor_rank_probabilities(
    returns_history,
    horizon: int,
    *,
    as_of=None,
    window: int = 504,
    innovations: str = "normal",
    df: float = 5.0,
    n_paths: int = 10_000,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Quintile probabilities [N, 5] from a one-factor volatility model: the baseline for ranks.

    Over the last `window` daily log returns dated on or before `as_of` (a wide frame, or an array
    of past rows): the market is the cross-sectional mean return, each ticker's beta its OLS
    loading, and the market's and each residual's volatility the RiskMetrics EWMA at the last row.
    The h-day return is beta_i * sqrt(h) * sigma_m * eps + sqrt(h) * sigma_i * eta_i, zero drift,
    with eps, eta standard normal or Student-t (`df` > 2, scaled to unit variance), ranked per path.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 day, got {horizon}")
    if innovations not in ("normal", "t"):
        raise ValueError(f"innovations must be 'normal' or 't', got {innovations!r}")
    if innovations == "t" and not df > 2:
        raise ValueError(f"t innovations need df > 2 for a finite variance, got {df}")
    x, _ = trailing_returns(returns_history, as_of, window)  # [T, N]
    valid = np.isfinite(x)
    if (valid.sum(axis=0) < 2).any():
        raise ValueError("every ticker needs at least 2 daily returns in the window")
    x = np.where(valid, x, np.nan)
    market = np.nanmean(x, axis=1)  # [T] equal-weight market
    xm, mm = np.nan_to_num(x - np.nanmean(x, axis=0)), np.where(valid, (market - market.mean())[:, None], 0.0)
    beta = (xm * mm).sum(axis=0) / np.maximum((mm * mm).sum(axis=0), 1e-12)  # [N]
    resid = x - market[:, None] * beta  # [T, N], NaN where missing
    sigma_m = np.sqrt(_last_ewma_variance(market))  # scalar
    sigma_e = np.sqrt(_last_ewma_variance(resid))  # [N]
    rng = np.random.default_rng(seed)
    eps, eta = (
        _innovations(rng, (n_paths, 1), innovations, df),
        _innovations(rng, (n_paths, len(beta)), innovations, df),
    )
    draws = np.sqrt(horizon) * (beta * sigma_m * eps + sigma_e * eta)  # [S, N]
    return rank_probabilities(draws)


def _innovations(rng: np.random.Generator, shape, innovations: str, df: float) -> np.ndarray:
    if innovations == "normal":
        return rng.standard_normal(shape)
    return rng.standard_t(df, size=shape) * np.sqrt((df - 2) / df)
