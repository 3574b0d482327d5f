"""The ARIMA baseline: ARMA(p, q) on daily log returns, order by AIC, run over each window."""

from __future__ import annotations

import warnings

import numpy as np

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.point import PointBaseline


@register("arima")
class ArimaForecaster(PointBaseline):
    """ARMA(p, q) on daily log returns (ARIMA(p, 1, q) on log prices), order by AIC on training data.

    statsmodels fits every order in 0..max_p x 0..max_q on the last `max_obs` training returns
    (demeaned; innovations MLE, which is fast); the lowest AIC wins. Forecasts from a window run
    the fitted ARMA recursion over the window's returns (innovations start at 0, which the
    window's L days wash out for an invertible MA part), so a forecast only reads its window.
    """

    def __init__(
        self,
        window=None,
        coverage=(0.8, 0.95),
        levels=DEFAULT_LEVELS,
        max_p: int = 2,
        max_q: int = 2,
        max_obs: int = 1000,
    ):
        super().__init__(window, coverage, levels)
        self.max_p, self.max_q, self.max_obs = max_p, max_q, max_obs

    def _fit_returns(self, returns):
        from statsmodels.tsa.arima.model import ARIMA

        r = returns[-self.max_obs :]
        mu = float(r.mean())
        x = (r - mu) * 100  # percent: better conditioned for the optimizer; AR/MA terms are scale-free
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on near-white-noise returns
            for p in range(self.max_p + 1):
                for q in range(self.max_q + 1):
                    res = ARIMA(x, order=(p, 0, q), trend="n").fit(method="innovations_mle")
                    if best is None or res.aic < best.aic:
                        best = res
        return {
            "mu": mu,
            "ar": np.asarray(best.arparams, dtype=np.float64),
            "ma": np.asarray(best.maparams, dtype=np.float64),
            "order": (len(best.arparams), len(best.maparams)),
        }

    def _forecast_returns(self, params, returns):
        ar, ma, mu = params["ar"], params["ma"], params["mu"]
        n, length = returns.shape
        horizon = self.window.horizon
        x = np.zeros((n, length + horizon))
        x[:, :length] = returns - mu
        e = np.zeros_like(x)  # innovations; 0 before the window and in the future
        for t in range(length + horizon):
            fitted = sum(ar[i] * x[:, t - 1 - i] for i in range(len(ar)) if t - 1 - i >= 0)
            fitted = fitted + sum(ma[j] * e[:, t - 1 - j] for j in range(len(ma)) if t - 1 - j >= 0)
            if t < length:
                e[:, t] = x[:, t] - fitted
            else:
                x[:, t] = fitted
        return x[:, length:] + mu
