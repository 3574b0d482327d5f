"""Statistical baselines of the backtest: per-ticker forecasters of cumulative log returns.

Every baseline has the forecaster's `predict_windows(windows)` shape of answer
(`BaselineForecast`: log_return, price, intervals), so the backtest treats all competitors alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import WindowConfig
from forecaster.intervals import ConformalCalibrator
from forecaster.windows import WindowSet, make_windows


@dataclass
class BaselineForecast:
    """Point forecasts and intervals of a baseline; the fields the backtest reads from `Prediction`."""

    log_return: np.ndarray  # [N, H] cumulative log return from the origin
    price: np.ndarray  # [N, H]
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> (lower, upper) prices [N, H]


class _Baseline:
    """A per-ticker statistical forecaster of cumulative log returns.

    `fit` learns its parameters from each ticker's training bars, then calibrates intervals on
    its own in-sample errors: the empirical quantile of |h-step cumulative log error| over the
    training windows, per horizon (`ConformalCalibrator` with unit scale). Unlike the model's
    intervals they do not adapt to volatility.
    """

    def __init__(self, window: WindowConfig | None = None, coverage: Sequence[float] = (0.8, 0.95)):
        self.window = window or WindowConfig()
        self.coverage = tuple(coverage)

    def fit(self, bars: pd.DataFrame) -> _Baseline:
        self.params_ = {}
        for ticker, one in bars.groupby("ticker", sort=True):
            returns = np.diff(np.log(one["adj_close"].to_numpy(np.float64)))
            self.params_[ticker] = self._fit_returns(returns)
        train = make_windows(bars, self.window)
        self.calibrator_ = ConformalCalibrator(self.coverage).fit(
            np.cumsum(train.y.astype(np.float64), axis=1), self._log_paths(train), np.ones(len(train))
        )
        return self

    def predict_windows(self, windows: WindowSet) -> BaselineForecast:
        paths = self._log_paths(windows)
        base = windows.last_price[:, None]
        ones = np.ones(len(windows))
        bounds = {}
        for level in self.coverage:
            lo, hi = self.calibrator_.interval(paths, ones, level)
            bounds[level] = (base * np.exp(lo), base * np.exp(hi))
        return BaselineForecast(paths, base * np.exp(paths), bounds)

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
        self, window=None, coverage=(0.8, 0.95), max_p: int = 2, max_q: int = 2, max_obs: int = 1000
    ):
        super().__init__(window, coverage)
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
