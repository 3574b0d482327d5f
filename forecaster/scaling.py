"""The volatility state at a forecast's origin: the unit the experts forecast in.

Returns are forecast in units of sigma_t * sqrt(h), where sigma_t is the RiskMetrics EWMA
volatility (lambda 0.94) at the origin, computed from the window's own daily returns and
started at the window's mean squared return. So one global model fits calm utilities and
volatile chip makers alike, the experts learn the shape of the distribution (skew, tails,
regime) rather than its scale, and the forecast needs nothing but the window.
"""

from __future__ import annotations

import numpy as np

EWMA_LAMBDA = 0.94  # RiskMetrics daily decay
_FLOOR = 1e-4  # 1 bp a day: a flat window (a halted stock) must not divide by zero


def origin_volatility(returns: np.ndarray, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """EWMA volatility for the day after each window: [N, L] daily log returns -> [N].

    sigma^2 = lam^L * mean(r^2) + (1 - lam) * sum_j lam^j * r_{t-j}^2, the recursion
    s_t = lam * s_{t-1} + (1 - lam) * r_t^2 run over the window from s_0 = mean(r^2).
    """
    r2 = returns.astype(np.float64) ** 2
    length = r2.shape[1]
    decay = (1 - lam) * lam ** np.arange(length)[::-1]  # weight of day j: the newest day gets 1 - lam
    var = lam**length * r2.mean(axis=1) + r2 @ decay
    return np.maximum(np.sqrt(var), _FLOOR)


def horizon_scale(sigma: np.ndarray, horizon: int) -> np.ndarray:
    """Scale of the cumulative h-day return for h = 1..H: [N] -> [N, H] (sigma * sqrt(h))."""
    return sigma[:, None] * np.sqrt(np.arange(1, horizon + 1))[None, :]
