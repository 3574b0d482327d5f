"""The historical baseline: rolling empirical quantiles of the last h-day returns before each origin."""

from __future__ import annotations

import numpy as np

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.volatility import VolatilityBaseline


@register("historical")
class HistoricalForecaster(VolatilityBaseline):
    """Rolling historical quantiles: at each origin, the empirical quantiles of the last `n_obs`
    overlapping h-day cumulative returns that ended on or before it (nothing is fitted)."""

    def __init__(
        self, window=None, coverage=(0.8, 0.95), levels=DEFAULT_LEVELS, n_obs: int = 500, min_obs: int = 100
    ):
        super().__init__(window, coverage, levels)
        self.n_obs, self.min_obs = n_obs, min_obs

    def _quantiles(self, params, returns, last):
        out = np.empty((len(last), self.window.horizon, len(self.levels_)))
        cum = np.concatenate([[0.0], np.cumsum(returns)])
        for h in range(1, self.window.horizon + 1):
            sums = cum[h:] - cum[:-h]  # sums[j]: r[j..j+h-1], known once return j+h-1 is: index j+h-1
            padded = np.concatenate([np.full(self.n_obs - 1 + h - 1, np.nan), sums])
            past = np.lib.stride_tricks.sliding_window_view(padded, self.n_obs)[last]  # [n, n_obs]
            full = ~np.isnan(past).any(axis=1)
            out[full, h - 1] = np.quantile(past[full], self.levels_, axis=1).T
            for i in np.flatnonzero(~full):  # origins early in the history: min_obs..n_obs sums
                out[i, h - 1] = np.quantile(past[i][~np.isnan(past[i])], self.levels_)
        return out

    def _min_returns(self):
        return self.min_obs + self.window.horizon - 1
