"""The GARCH(1,1)-t baseline: the conditional variance filtered to each origin, Student-t quantiles."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import signal, stats

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.volatility import VolatilityBaseline


@register("garch")
class GarchForecaster(VolatilityBaseline):
    """GARCH(1,1) with Student-t innovations and a constant mean, fitted per ticker with `arch`.

    Fit: maximum likelihood on the last `max_obs` training returns (in percent). Forecast: the
    conditional variance is filtered with the fitted parameters through every return up to the
    origin (no refit; the filter starts at the fit sample's variance, which thousands of days wash
    out); the h-step variances follow the GARCH recursion s_{t+h} = omega + (alpha + beta) s_{t+h-1},
    their sum is the variance V_h of the h-day return, and the quantile at level tau is
    h * mu + sqrt(V_h) * t_nu^-1(tau) * sqrt((nu - 2) / nu) (a unit-variance Student t). Exact for
    h = 1; beyond, the sum of GARCH-t returns is not Student t (its tails thin towards normal), so
    this is the usual approximation.
    """

    def __init__(self, window=None, coverage=(0.8, 0.95), levels=DEFAULT_LEVELS, max_obs: int = 2000):
        super().__init__(window, coverage, levels)
        self.max_obs = max_obs

    def _fit_returns(self, returns):
        from arch import arch_model

        x = 100 * returns[-self.max_obs :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on near-constant volatility
            res = arch_model(x, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(
                disp="off", show_warning=False
            )
        p = res.params
        return {
            "mu": float(p["mu"]),
            "omega": float(p["omega"]),
            "alpha": float(p["alpha[1]"]),
            "beta": float(p["beta[1]"]),
            "nu": float(p["nu"]),
            "start": float(x.var()),
        }

    def _quantiles(self, params, returns, last):
        mu, omega, alpha, beta, nu = (params[k] for k in ("mu", "omega", "alpha", "beta", "nu"))
        e2 = (100 * returns - mu) ** 2
        s = garch_variance(e2, alpha, beta, omega, params["start"])[last]  # [n], percent^2
        steps = [s]
        for _ in range(1, self.window.horizon):
            steps.append(omega + (alpha + beta) * steps[-1])
        total = np.cumsum(np.stack(steps, axis=1), axis=1)  # [n, H]
        z = stats.t.ppf(self.levels_, nu) * np.sqrt((nu - 2) / nu)  # [Q]
        h = np.arange(1, self.window.horizon + 1)
        return (h[None, :, None] * mu + np.sqrt(total)[:, :, None] * z) / 100


def garch_variance(innovation2: np.ndarray, weight: float, persistence: float, const: float, start):
    """s[k] = const + weight * x[k] + persistence * s[k - 1], with s[-1] = `start`: the GARCH variance
    of the day after return k. A causal linear filter, so s[k] reads x[..k] only (EWMA is
    `forecaster.features.volatility.ewma_variance`)."""
    return signal.lfilter([1.0], [1.0, -persistence], const + weight * innovation2, zi=[persistence * start])[
        0
    ]
