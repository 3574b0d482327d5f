"""Causal volatility estimates from daily log returns: RiskMetrics EWMA and realised volatility.

Index t of every output uses returns r_0..r_t only, so sigma_t is a forecast of the volatility
of day t + 1 made at the close of day t. Features, intervals and baselines share these.

Warm-up. A ticker's first days have little history. Rather than seed with the standard
deviation of its first 20 days (which would let days 0..19 see their own future), every
estimate starts as an expanding mean of squared returns over the days available, with a prior
of `PRIOR_VOL` counted as one extra day, so day 0 with a zero return is still finite:
var_t = (PRIOR_VOL**2 + sum_{s<=t} r_s**2) / (t + 2). EWMA switches to its recursion after
`warmup` days; a realised volatility over k days once k days exist.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

LAMBDA = 0.94  # RiskMetrics' daily decay
PRIOR_VOL = 0.01  # 1% a day, about the long-run S&P 500; it weighs one day and fades fast
WARMUP = 20  # days of expanding mean before the EWMA recursion takes over
VOL_FLOOR = 1e-5  # a run of zero returns (a stale quote) has zero variance; keep its log finite
# Bars after which EWMA has forgotten how it started (0.94**300 < 1e-8): a window cut from the
# last `LOOKBACK` + L bars has the same volatility features as one cut from the full history.
LOOKBACK = 320


def ewma_variance(r2: np.ndarray, lam: float, start) -> np.ndarray:
    """The one EWMA recursion of the code base, along the last axis: [..., T] squared returns -> [..., T].

    s_t = lam * s_{t-1} + (1 - lam) * r2_t, from s_{-1} = `start` (a scalar, or one value per
    row). Callers differ only in how they start it: the daily features after an expanding-mean
    warm-up (`ewma_volatility`), the target's unit from the window's own mean square
    (`origin_volatility`), the EWMA baseline from its training sample's variance. lfilter runs
    the recursion in C.
    """
    r2 = np.asarray(r2, dtype=np.float64)
    zi = lam * np.asarray(start, dtype=np.float64)[..., None] * np.ones(r2.shape[:-1] + (1,))
    return lfilter([1 - lam], [1, -lam], r2, axis=-1, zi=zi)[0]


def ewma_volatility(returns: np.ndarray, lam: float = LAMBDA, *, warmup: int = WARMUP) -> np.ndarray:
    """RiskMetrics EWMA volatility: [T] daily log returns -> [T] sigma.

    sigma_t**2 = lam * sigma_{t-1}**2 + (1 - lam) * r_t**2 for t >= `warmup`; before that the
    expanding mean of the module docstring. sigma_t is the forecast for day t + 1.
    """
    if not 0 < lam < 1 or warmup < 1:
        raise ValueError(f"need 0 < lam < 1 and warmup >= 1, got lam={lam}, warmup={warmup}")
    r2 = np.square(np.asarray(returns, dtype=np.float64))
    var = _expanding_var(r2[:warmup])
    if len(r2) > warmup:
        var = np.concatenate([var, ewma_variance(r2[warmup:], lam, var[-1])])
    return np.sqrt(np.maximum(var, VOL_FLOOR**2))


def realized_volatility(returns: np.ndarray, days: int) -> np.ndarray:
    """Root mean square of the last `days` daily log returns (HAR's components): [T] -> [T].

    Uses r_{t-days+1}..r_t; before `days` returns exist, the expanding mean with the prior.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    r2 = np.square(np.asarray(returns, dtype=np.float64))
    var = _expanding_var(r2)
    if len(r2) >= days:
        # Summing each window (not differencing a running total) gives the same bits whatever
        # history precedes it: a short tail at serving time matches the training features.
        var[days - 1 :] = np.lib.stride_tricks.sliding_window_view(r2, days).sum(axis=1) / days
    return np.sqrt(np.maximum(var, VOL_FLOOR**2))


def _expanding_var(r2: np.ndarray) -> np.ndarray:
    """(PRIOR_VOL**2 + sum_{s<=t} r2_s) / (t + 2): the warm-up estimate of every volatility."""
    return (PRIOR_VOL**2 + np.cumsum(r2)) / (np.arange(len(r2)) + 2)


# ---- the target's unit: volatility at a window's origin ----

_FLOOR = 1e-4  # 1 bp a day: a flat window (a halted stock) must not divide by zero


def origin_volatility(returns: np.ndarray, lam: float = LAMBDA) -> np.ndarray:
    """EWMA volatility for the day after each window: [N, L] daily log returns -> [N].

    Computed from the window alone (so a forecast needs nothing but its window): the recursion
    s_t = lam * s_{t-1} + (1 - lam) * r_t^2 run over the window from s_0 = mean(r^2) of the window.
    """
    r2 = returns.astype(np.float64) ** 2
    var = ewma_variance(r2, lam, r2.mean(axis=-1))[..., -1]
    return np.maximum(np.sqrt(var), _FLOOR)


def horizon_scale(sigma: np.ndarray, horizon: int) -> np.ndarray:
    """Scale of the cumulative h-day return for h = 1..H: [N] -> [N, H] (sigma * sqrt(h))."""
    return sigma[:, None] * np.sqrt(np.arange(1, horizon + 1))[None, :]
