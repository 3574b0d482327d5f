"""The EWMA baseline: RiskMetrics volatility at each origin times empirical standardized quantiles."""

from __future__ import annotations

import numpy as np

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.volatility import VolatilityBaseline
from forecaster.features.volatility import ewma_variance


@register("ewma")
class EwmaForecaster(VolatilityBaseline):
    """RiskMetrics EWMA volatility with empirical quantiles of standardized residuals.

    sigma^2_{t+1} = lambda * sigma^2_t + (1 - lambda) * r_t^2 (zero mean, lambda 0.94), filtered
    through every return up to the origin. Fit: per ticker and horizon h, the empirical quantiles
    of z = (r_{t+1} + ... + r_{t+h}) / (sigma_{t+1} * sqrt(h)) over the training days after a
    `burn_in`; forecast: sigma_{t+1} * sqrt(h) * those quantiles. The residual quantiles carry the
    ticker's fat tails and drift; the EWMA scale carries the volatility state.
    """

    def __init__(
        self, window=None, coverage=(0.8, 0.95), levels=DEFAULT_LEVELS, lam: float = 0.94, burn_in: int = 60
    ):
        super().__init__(window, coverage, levels)
        self.lam, self.burn_in = lam, burn_in

    def _fit_returns(self, returns):
        horizon = self.window.horizon
        start = float(returns.var())
        sigma = np.sqrt(ewma_variance(returns**2, self.lam, start))
        cum = np.concatenate([[0.0], np.cumsum(returns)])
        z = np.empty((horizon, len(self.levels_)))
        for h in range(1, horizon + 1):
            t = np.arange(self.burn_in, len(returns) - h)  # origin after return t; sums r[t+1..t+h]
            if len(t) < 50:
                raise ValueError(f"EWMA baseline needs more training returns than {len(returns)}")
            z[h - 1] = np.quantile((cum[t + 1 + h] - cum[t + 1]) / (sigma[t] * np.sqrt(h)), self.levels_)
        return {"start": start, "z": z}

    def _quantiles(self, params, returns, last):
        sigma = np.sqrt(ewma_variance(returns**2, self.lam, params["start"]))[last]
        h = np.arange(1, self.window.horizon + 1)
        return sigma[:, None, None] * np.sqrt(h)[None, :, None] * params["z"][None, :, :]
