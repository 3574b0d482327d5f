"""Statistical baselines of the backtest: per-ticker forecasters of cumulative log returns.

Every baseline has the forecaster's `predict_windows(windows)` shape of answer
(`BaselineForecast`: log_return, price, intervals, levels, quantiles), so the backtest treats all
competitors alike. The point baselines here (naive, drift, ARIMA) get quantiles too: the point path
plus the empirical quantiles of their own in-sample errors; the volatility-driven distributional
baselines (GARCH, EWMA, historical) live in `baselines_vol`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.calibration.conformal import ConformalCalibrator
from forecaster.config import DEFAULT_LEVELS, WindowConfig
from forecaster.features.windows import WindowSet, make_windows


@dataclass
class BaselineForecast:
    """Point forecasts, intervals and quantiles of a baseline; the fields the backtest reads from `Prediction`."""

    log_return: np.ndarray  # [N, H] cumulative log return from the origin
    price: np.ndarray  # [N, H]
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> (lower, upper) prices [N, H]
    levels: tuple[float, ...]  # sorted quantile levels
    quantiles: np.ndarray  # [N, H, Q] cumulative log-return quantiles, non-decreasing along Q


def level_index(levels: Sequence[float], level: float) -> int:
    """Position of `level` in `levels` (float-tolerant: (1 - 0.8) / 2 finds 0.1)."""
    hits = np.flatnonzero(np.isclose(np.asarray(levels, dtype=np.float64), level, atol=1e-9))
    if len(hits) == 0:
        raise ValueError(f"quantile level {level:g} is not among the levels {tuple(levels)}")
    return int(hits[0])


def check_levels(levels: Sequence[float], coverage: Sequence[float]) -> tuple[float, ...]:
    """Sorted levels in (0, 1) that hold the median and both ends of every central interval."""
    levels = tuple(float(x) for x in levels)
    if list(levels) != sorted(set(levels)) or not all(0 < x < 1 for x in levels):
        raise ValueError(f"quantile levels must be increasing and inside (0, 1), got {levels}")
    for level in (0.5, *[(1 - c) / 2 for c in coverage], *[(1 + c) / 2 for c in coverage]):
        level_index(levels, level)
    return levels


def forecast_from_quantiles(
    windows: WindowSet, levels: tuple[float, ...], quantiles: np.ndarray, coverage: Sequence[float]
) -> BaselineForecast:
    """Point = the median, intervals = the central quantiles, in prices: [N, H, Q] -> forecast."""
    base = windows.last_price[:, None]
    median = quantiles[:, :, level_index(levels, 0.5)]
    bounds = {
        c: tuple(base * np.exp(quantiles[:, :, level_index(levels, x)]) for x in ((1 - c) / 2, (1 + c) / 2))
        for c in coverage
    }
    return BaselineForecast(median, base * np.exp(median), bounds, levels, quantiles)


class _Baseline:
    """A per-ticker statistical forecaster of cumulative log returns.

    `fit` learns its parameters from each ticker's training bars, then calibrates intervals on
    its own in-sample errors: the empirical quantile of |h-step cumulative log error| over the
    training windows, per horizon (`ConformalCalibrator` with unit scale). Its quantiles are the
    point path plus the empirical quantiles of the same errors, per ticker and horizon (for the
    naive forecast: the ticker's unconditional h-day return distribution). Unlike the model's,
    neither adapts to volatility, and the 0.5 quantile need not equal the point forecast.
    """

    def __init__(
        self,
        window: WindowConfig | None = None,
        coverage: Sequence[float] = (0.8, 0.95),
        levels: Sequence[float] = DEFAULT_LEVELS,
    ):
        self.window = window or WindowConfig()
        self.coverage = tuple(coverage)
        self.levels = tuple(levels)

    def fit(self, bars: pd.DataFrame) -> _Baseline:
        self.params_ = {}
        for ticker, one in bars.groupby("ticker", sort=True):
            returns = np.diff(np.log(one["adj_close"].to_numpy(np.float64)))
            self.params_[ticker] = self._fit_returns(returns)
        train = make_windows(bars, self.window)
        actual, paths = np.cumsum(train.y.astype(np.float64), axis=1), self._log_paths(train)
        self.calibrator_ = ConformalCalibrator(self.coverage).fit(actual, paths, np.ones(len(train)))
        self.error_quantiles_ = {  # ticker -> [H, Q]
            t: np.quantile(actual[train.ticker == t] - paths[train.ticker == t], self.levels, axis=0).T
            for t in self.params_
        }
        return self

    def predict_windows(self, windows: WindowSet, bars: pd.DataFrame | None = None) -> BaselineForecast:
        """Forecasts from each window; `bars` is accepted for a common signature and not needed."""
        paths = self._log_paths(windows)
        base = windows.last_price[:, None]
        ones = np.ones(len(windows))
        bounds = {}
        for level in self.coverage:
            lo, hi = self.calibrator_.interval(paths, ones, level)
            bounds[level] = (base * np.exp(lo), base * np.exp(hi))
        errors = np.zeros((len(windows), self.window.horizon, len(self.levels)))
        for ticker in np.unique(windows.ticker):
            errors[windows.ticker == ticker] = self.error_quantiles_[ticker]
        quantiles = paths[:, :, None] + errors  # [N, H, 1] + [N, H, Q]
        return BaselineForecast(paths, base * np.exp(paths), bounds, self.levels, quantiles)

    def _log_paths(self, windows: WindowSet) -> np.ndarray:
        """Cumulative log-return forecasts [N, H], ticker by ticker."""
        out = np.zeros((len(windows), self.window.horizon))
        for ticker in np.unique(windows.ticker):
            if ticker not in self.params_:
                raise ValueError(f"{type(self).__name__} was not fitted on {ticker}")
            rows = windows.ticker == ticker
            out[rows] = np.cumsum(self._forecast_returns(self.params_[ticker], windows.returns[rows]), axis=1)
        return out

    def _fit_returns(self, returns: np.ndarray) -> dict:
        return {}

    def _forecast_returns(self, params: dict, returns: np.ndarray) -> np.ndarray:
        """Daily log-return forecasts of the next H days from each window: [N, L] -> [N, H]."""
        raise NotImplementedError


class NaiveForecaster(_Baseline):
    """Random walk: every future price equals the last one."""

    def _forecast_returns(self, params, returns):
        return np.zeros((len(returns), self.window.horizon))


class DriftForecaster(_Baseline):
    """Random walk with drift: the mean daily log return of the training bars, every day ahead."""

    def _fit_returns(self, returns):
        return {"mu": float(returns.mean())}

    def _forecast_returns(self, params, returns):
        return np.full((len(returns), self.window.horizon), params["mu"])


class ArimaForecaster(_Baseline):
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
