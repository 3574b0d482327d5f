"""The GJR-GARCH(1,1) skewed-t baseline: h-day quantiles simulated from the state filtered to each origin."""

from __future__ import annotations

import warnings

import numpy as np

from forecaster.config import DEFAULT_LEVELS
from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.garch import garch_variance
from forecaster.evaluation.baselines.volatility import VolatilityBaseline

CHUNK = 512  # origins simulated at once: [CHUNK, simulations] floats per array


@register("gjr_garch")
class GjrGarchForecaster(VolatilityBaseline):
    """GJR-GARCH(1,1) with Hansen's skewed-t innovations and a constant mean, per ticker with `arch`.

    Fit: maximum likelihood on every training return (in percent; an expanding history), then
    `simulations` standardized skew-t draws z [S, H] (seeded by `random_state`), drawn once per
    fit and shared by every origin. Forecast: the conditional variance of the day after the origin,
    s_{t+1} = omega + (alpha + gamma 1{e_t < 0}) e_t^2 + beta s_t, is filtered with the fitted
    parameters through the returns up to the origin only (from the fit sample's variance, which
    thousands of days wash out); then S paths run the same recursion forward,
    e_{t+k} = sqrt(s_{t+k}) z_k, and the quantiles of their cumulative sums h mu + e_{t+1} + .. +
    e_{t+h} are the h-day quantiles. Unlike `garch`'s Student-t approximation, the h-day
    distribution keeps the leverage effect's skew and the thinning of the tails with h.
    """

    def __init__(
        self,
        window=None,
        coverage=(0.8, 0.95),
        levels=DEFAULT_LEVELS,
        simulations: int = 5000,
        random_state: int = 0,
    ):
        super().__init__(window, coverage, levels)
        self.simulations, self.random_state = simulations, random_state

    def _fit_returns(self, returns):
        from arch import arch_model
        from arch.univariate import SkewStudent

        x = 100 * returns
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on near-constant volatility
            res = arch_model(x, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="skewt").fit(
                disp="off", show_warning=False
            )
        p = res.params
        u = np.random.default_rng(self.random_state).uniform(size=(self.simulations, self.window.horizon))
        return {
            "mu": float(p["mu"]),
            "omega": float(p["omega"]),
            "alpha": float(p["alpha[1]"]),
            "gamma": float(p["gamma[1]"]),
            "beta": float(p["beta[1]"]),
            "eta": float(p["eta"]),
            "lambda": float(p["lambda"]),
            "start": float(x.var()),
            "z": SkewStudent().ppf(u, [p["eta"], p["lambda"]]),  # [S, H] unit-variance skew t
        }

    def _quantiles(self, params, returns, last):
        mu, omega, alpha, gamma, beta = (params[k] for k in ("mu", "omega", "alpha", "gamma", "beta"))
        e = 100 * returns - mu
        s = gjr_variance(e, omega, alpha, gamma, beta, params["start"])[last]  # [n], percent^2
        out = np.empty((len(last), self.window.horizon, len(self.levels_)))
        for lo in range(0, len(last), CHUNK):
            out[lo : lo + CHUNK] = self._simulate(params, s[lo : lo + CHUNK])
        return out / 100

    def _simulate(self, params, s: np.ndarray) -> np.ndarray:
        """Cumulative-return quantiles [n, H, Q] (percent) of paths from next-day variances s [n]."""
        mu, omega, alpha, gamma, beta = (params[k] for k in ("mu", "omega", "alpha", "gamma", "beta"))
        z = params["z"]  # [S, H]
        var = np.repeat(s[:, None], z.shape[0], axis=1)  # [n, S]
        total = np.zeros_like(var)
        out = np.empty((len(s), z.shape[1], len(self.levels_)))
        for k in range(z.shape[1]):
            shock = np.sqrt(var) * z[None, :, k]
            total += mu + shock
            out[:, k] = np.quantile(total, self.levels_, axis=1).T
            var = omega + (alpha + gamma * (z[None, :, k] < 0)) * shock**2 + beta * var
        return out


def gjr_variance(e: np.ndarray, omega: float, alpha: float, gamma: float, beta: float, start: float):
    """s[k] = omega + (alpha + gamma 1{e[k] < 0}) e[k]^2 + beta s[k - 1], s[-1] = `start`: the GJR
    variance of the day after return k, reading e[..k] only (a causal linear filter)."""
    return garch_variance((alpha + gamma * (e < 0)) * e**2, 1.0, beta, omega, start)
