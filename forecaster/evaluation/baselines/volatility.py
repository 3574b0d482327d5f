"""Distributional baselines driven by the volatility state: quantiles filtered through the history.

Each forecasts quantiles of the next 1..H cumulative log returns of every window; the point
forecast is the median and the intervals are central quantiles. Their state at an origin is
filtered through the ticker's whole history, so `predict_windows(windows, bars)` takes the bars:
only returns dated on or before each window's origin are read (the recursions are causal, so later
rows cannot change an earlier state). Without `bars` they read the bars given to `fit`, which then
must reach every origin.

These are the bar to beat: on daily stock returns almost all the skill of a density forecast is
in the volatility state.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pandas as pd

from forecaster.evaluation.baselines.base import Baseline, BaselineForecast, forecast_from_quantiles, history
from forecaster.features.windows import WindowSet


class VolatilityBaseline(Baseline):
    """Fit per ticker on training bars; forecast quantiles from the history up to each origin."""

    def fit(self, bars: pd.DataFrame) -> VolatilityBaseline:
        super().fit(bars)
        self.bars_ = bars  # the history `predict_windows` reads when it is given none
        return self

    def predict_windows(self, windows: WindowSet, bars: pd.DataFrame | None = None) -> BaselineForecast:
        """Quantiles [N, H, Q] from the returns up to each window's origin (`bars`: the full frame)."""
        past = history(self.bars_ if bars is None else bars, np.unique(windows.ticker))
        quantiles = np.zeros((len(windows), self.window.horizon, len(self.levels_)))
        for ticker in np.unique(windows.ticker):
            params = self._params(ticker)
            rows = windows.ticker == ticker
            dates, returns = past[ticker]
            at = self._returns_known_at(ticker, dates, windows.origin[rows])
            quantiles[rows] = self._quantiles(params, returns, at - 1)
        return forecast_from_quantiles(windows, self.levels_, quantiles, self.coverage)

    def _returns_known_at(self, ticker: str, dates: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """How many daily returns are known at each origin [n]: bar i (date dates[i]) closes return i - 1."""
        at = np.searchsorted(dates, origins)
        found = (at < len(dates)) & (dates[np.minimum(at, len(dates) - 1)] == origins)
        if not found.all():
            raise ValueError(
                f"{ticker}: origin {origins[~found][0]} is not in the bars; pass bars= that reach it"
            )
        short = at < self._min_returns()
        if short.any():
            raise ValueError(
                f"{ticker}: {type(self).__name__} needs {self._min_returns()} daily returns up to an "
                f"origin, origin {origins[short][0]} has {at[short][0]}"
            )
        return at

    def _min_returns(self) -> int:
        """Daily returns a forecast needs up to its origin."""
        return 1

    @abstractmethod
    def _quantiles(self, params: dict, returns: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Cumulative log-return quantiles [n, H, Q] at origins whose last known return is `last` [n]."""
