"""The HAR quantile-regression baseline: each h-day quantile linear in 1-, 5- and 22-day realized volatility."""

from __future__ import annotations

import warnings

import numpy as np

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.volatility import VolatilityBaseline
from forecaster.features.volatility import realized_volatility

HAR_DAYS = (1, 5, 22)  # Corsi's daily, weekly and monthly components


@register("har_qr")
class HarQuantileForecaster(VolatilityBaseline):
    """Linear quantile regression of the h-day return on HAR realized volatilities, per ticker.

    For every horizon h and level tau, statsmodels' `QuantReg` fits
    q_tau(r_{t+1} + .. + r_{t+h}) = b0 + b1 RV1_t + b5 RV5_t + b22 RV22_t on the ticker's training
    origins after `burn_in` days (per ticker, not pooled: tickers differ in drift and tail shape),
    where RVk_t is `features.volatility.realized_volatility` over the k returns up to t. With
    `log_vol` the regressors are log RVk instead: a quantile linear in log volatility cannot grow in
    proportion to it, and on daily stocks the levels score better (benchmarks/probe_distributional.py).
    Forecast: the same linear function of the RVs at the origin (causal, from the returns up to it),
    sorted along the levels so the quantiles never cross.
    """

    def __init__(
        self,
        window=None,
        coverage=(0.8, 0.95),
        levels=DEFAULT_LEVELS,
        log_vol: bool = False,
        burn_in: int = 22,
    ):
        super().__init__(window, coverage, levels)
        self.log_vol, self.burn_in = log_vol, burn_in

    def _fit_returns(self, returns):
        from statsmodels.regression.quantile_regression import QuantReg

        x = self._design(returns)  # [T, 4]
        cum = np.concatenate([[0.0], np.cumsum(100 * returns)])  # percent: better conditioned
        coef = np.empty((self.window.horizon, x.shape[1], len(self.levels_)))  # [H, 4, Q]
        for h in range(1, self.window.horizon + 1):
            t = np.arange(self.burn_in - 1, len(returns) - h)  # origin after return t; sums r[t+1..t+h]
            if len(t) < 100:
                raise ValueError(f"HAR-QR baseline needs more training returns than {len(returns)}")
            model = QuantReg(cum[t + 1 + h] - cum[t + 1], x[t])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # iteration-limit chatter in the far tails
                for j, level in enumerate(self.levels_):
                    coef[h - 1, :, j] = model.fit(q=level, max_iter=2000).params
        return {"coef": coef / 100}

    def _quantiles(self, params, returns, last):
        x = self._design(returns)[last]  # [n, 4]
        return np.sort(np.einsum("nk,hkq->nhq", x, params["coef"]), axis=-1)  # [n, H, Q]

    def _design(self, returns: np.ndarray) -> np.ndarray:
        """[1, RV1, RV5, RV22] (or their logs) of every day, from the returns up to it: [T] -> [T, 4]."""
        rv = np.column_stack([realized_volatility(returns, days) for days in HAR_DAYS])
        return np.column_stack([np.ones(len(returns)), np.log(rv) if self.log_vol else 100 * rv])

    def _min_returns(self):
        return max(HAR_DAYS)
