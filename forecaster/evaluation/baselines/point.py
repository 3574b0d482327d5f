"""Point-path baselines: a forecast path from the window, and the quantiles of its own in-sample errors."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pandas as pd

from forecaster.evaluation.baselines.base import Baseline, BaselineForecast, forecast_from_quantiles
from forecaster.features.windows import WindowSet, make_windows


class PointBaseline(Baseline):
    """A point path of cumulative log returns from each window, with a distribution around it.

    Its quantiles are the point path plus the empirical quantiles of its own in-sample errors,
    per ticker and horizon (for the naive forecast: the ticker's unconditional h-day return
    distribution), and its intervals are their central quantiles. Unlike the model's, they do
    not adapt to volatility, and the point forecast stays the path (not the 0.5 quantile).
    Subclasses give the path (`_forecast_returns`) and may fit parameters (`_fit_returns`).
    """

    def fit(self, bars: pd.DataFrame) -> PointBaseline:
        super().fit(bars)
        train = make_windows(bars, self.window)
        errors = np.cumsum(train.y.astype(np.float64), axis=1) - self._log_paths(train)  # [N, H]
        self.error_quantiles_ = {  # ticker -> [H, Q]
            t: np.quantile(errors[train.ticker == t], self.levels_, axis=0).T for t in self.params_
        }
        return self

    def predict_windows(self, windows: WindowSet, bars: pd.DataFrame | None = None) -> BaselineForecast:
        """Forecasts from each window; `bars` is accepted for a common signature and not needed."""
        paths = self._log_paths(windows)
        errors = np.zeros((len(windows), self.window.horizon, len(self.levels_)))
        for ticker in np.unique(windows.ticker):
            errors[windows.ticker == ticker] = self.error_quantiles_[ticker]
        quantiles = paths[:, :, None] + errors  # [N, H, 1] + [N, H, Q]
        return forecast_from_quantiles(windows, self.levels_, quantiles, self.coverage, point=paths)

    def _log_paths(self, windows: WindowSet) -> np.ndarray:
        """Cumulative log-return forecasts [N, H], ticker by ticker."""
        out = np.zeros((len(windows), self.window.horizon))
        for ticker in np.unique(windows.ticker):
            rows = windows.ticker == ticker
            out[rows] = np.cumsum(self._forecast_returns(self._params(ticker), windows.returns[rows]), axis=1)
        return out

    @abstractmethod
    def _forecast_returns(self, params: dict, returns: np.ndarray) -> np.ndarray:
        """Daily log-return forecasts of the next H days from each window: [N, L] -> [N, H]."""
