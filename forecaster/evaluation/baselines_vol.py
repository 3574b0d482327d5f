"""Distributional baselines driven by the volatility state: GARCH(1,1)-t, EWMA, historical quantiles.

Each forecasts quantiles of the next 1..H cumulative log returns of every window (`BaselineForecast`
with `levels` and `quantiles` [N, H, Q]); the point forecast is the median and the intervals are
central quantiles. Their state at an origin is filtered through the ticker's whole history, so
`predict_windows(windows, bars)` takes the bars: only returns dated on or before each window's
origin are read (the recursions are causal, so later rows cannot change an earlier state). Without
`bars` they read the bars given to `fit`, which then must reach every origin.

These are the bar to beat: on daily stock returns almost all the skill of a density forecast is
in the volatility state.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import signal, stats

from forecaster.config import DEFAULT_LEVELS, WindowConfig
from forecaster.evaluation.baselines import BaselineForecast, check_levels, forecast_from_quantiles
from forecaster.features.volatility import ewma_variance
from forecaster.features.windows import WindowSet


class _VolatilityBaseline:
    """Fit per ticker on training bars; forecast quantiles from the history up to each origin."""

    def __init__(
        self,
        window: WindowConfig | None = None,
        coverage: Sequence[float] = (0.8, 0.95),
        levels: Sequence[float] = DEFAULT_LEVELS,
    ):
        self.window = window or WindowConfig()
        self.coverage = tuple(coverage)
        self.levels = tuple(levels)

    def fit(self, bars: pd.DataFrame) -> _VolatilityBaseline:
        self.levels_ = check_levels(self.levels, self.coverage)
        self.params_ = {}
        for ticker, (_, returns) in _history(bars).items():
            try:
                self.params_[ticker] = self._fit_returns(returns)
            except ValueError as exc:
                raise ValueError(f"{ticker}: {exc}") from exc
        self.bars_ = bars
        return self

    def predict_windows(self, windows: WindowSet, bars: pd.DataFrame | None = None) -> BaselineForecast:
        """Quantiles [N, H, Q] from the returns up to each window's origin (`bars`: the full frame)."""
        history = _history(self.bars_ if bars is None else bars, np.unique(windows.ticker))
        quantiles = np.zeros((len(windows), self.window.horizon, len(self.levels_)))
        for ticker in np.unique(windows.ticker):
            if ticker not in self.params_:
                raise ValueError(f"{type(self).__name__} was not fitted on {ticker}")
            rows = windows.ticker == ticker
            dates, returns = history[ticker]
            # Bar i (date dates[i]) closes return i - 1: the last return known at an origin.
            at = np.searchsorted(dates, windows.origin[rows])
            found = (at < len(dates)) & (dates[np.minimum(at, len(dates) - 1)] == windows.origin[rows])
            if not found.all():
                first = windows.origin[rows][~found][0]
                raise ValueError(f"{ticker}: origin {first} is not in the bars; pass bars= that reach it")
            if (at < self._min_returns()).any():
                first = windows.origin[rows][at < self._min_returns()][0]
                raise ValueError(
                    f"{ticker}: {type(self).__name__} needs {self._min_returns()} daily returns up to an "
                    f"origin, origin {first} has {at[at < self._min_returns()][0]}"
                )
            quantiles[rows] = self._quantiles(self.params_[ticker], returns, at - 1)
        return forecast_from_quantiles(windows, self.levels_, quantiles, self.coverage)

    def _fit_returns(self, returns: np.ndarray) -> dict:
        return {}

    def _min_returns(self) -> int:
        """Daily returns a forecast needs up to its origin."""
        return 1

    def _quantiles(self, params: dict, returns: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Cumulative log-return quantiles [n, H, Q] at origins whose last known return is `last` [n]."""
        raise NotImplementedError


def _history(bars: pd.DataFrame, tickers=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ticker -> (bar dates [T] datetime64[D], daily log returns [T - 1]), in date order."""
    if tickers is not None:
        bars = bars[bars["ticker"].isin(list(tickers))]
    out = {}
    for ticker, one in bars.groupby("ticker", sort=True):
        one = one.sort_values("date")
        out[ticker] = (
            one["date"].to_numpy("datetime64[D]"),
            np.diff(np.log(one["adj_close"].to_numpy(np.float64))),
        )
    return out


def _garch_variance(innovation2: np.ndarray, weight: float, persistence: float, const: float, start):
    """s[k] = const + weight * x[k] + persistence * s[k - 1], with s[-1] = `start`: the GARCH variance
    of the day after return k. A causal linear filter, so s[k] reads x[..k] only (EWMA is
    `forecaster.features.volatility.ewma_variance`)."""
    return signal.lfilter([1.0], [1.0, -persistence], const + weight * innovation2, zi=[persistence * start])[
        0
    ]


class GarchForecaster(_VolatilityBaseline):
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
        s = _garch_variance(e2, alpha, beta, omega, params["start"])[last]  # [n], percent^2
        steps = [s]
        for _ in range(1, self.window.horizon):
            steps.append(omega + (alpha + beta) * steps[-1])
        total = np.cumsum(np.stack(steps, axis=1), axis=1)  # [n, H]
        z = stats.t.ppf(self.levels_, nu) * np.sqrt((nu - 2) / nu)  # [Q]
        h = np.arange(1, self.window.horizon + 1)
        return (h[None, :, None] * mu + np.sqrt(total)[:, :, None] * z) / 100


class EwmaForecaster(_VolatilityBaseline):
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


class HistoricalForecaster(_VolatilityBaseline):
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
