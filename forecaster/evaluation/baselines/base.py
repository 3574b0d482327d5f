"""What every baseline of the backtest is: `Baseline`, its answer `BaselineForecast`, the registry.

A baseline is a per-ticker statistical forecaster of cumulative log returns with the forecaster's
`predict_windows(windows)` shape of answer, so the backtest treats all competitors alike. Its
intervals are the central quantiles of its own quantiles (`forecast_from_quantiles`): coverage,
Winkler and pinball scores then judge one distribution. `register` makes a baseline a backtest
competitor under a name (`BASELINES`, which the backtest reads).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import DEFAULT_LEVELS, WindowConfig
from forecaster.features.windows import WindowSet


@dataclass
class BaselineForecast:
    """Point forecasts, intervals and quantiles of a baseline; the fields the backtest reads from `Prediction`."""

    log_return: np.ndarray  # [N, H] cumulative log return from the origin
    price: np.ndarray  # [N, H]
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> (lower, upper) prices [N, H]
    levels: tuple[float, ...]  # sorted quantile levels
    quantiles: np.ndarray  # [N, H, Q] cumulative log-return quantiles, non-decreasing along Q


class Baseline(ABC):
    """A per-ticker forecaster of the next H cumulative log returns of every window.

    `fit` checks the levels, then learns each ticker's parameters from its daily log returns
    (`_fit_returns`, per ticker; nothing by default); `predict_windows` answers a
    `BaselineForecast` whose intervals are central quantiles, so `levels` must hold the median and
    both ends of every `coverage` interval.
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

    def fit(self, bars: pd.DataFrame) -> Baseline:
        self.levels_ = check_levels(self.levels, self.coverage)
        self.params_ = {}
        for ticker, (_, returns) in history(bars).items():
            try:
                self.params_[ticker] = self._fit_returns(returns)
            except ValueError as exc:
                raise ValueError(f"{ticker}: {exc}") from exc
        return self

    @abstractmethod
    def predict_windows(self, windows: WindowSet, bars: pd.DataFrame | None = None) -> BaselineForecast:
        """Forecasts from each window; `bars` (every bar, up to and past the origins) for a baseline
        that reads more history than the window holds, and only up to each origin."""

    def _fit_returns(self, returns: np.ndarray) -> dict:
        """One ticker's parameters from its training daily log returns [T - 1], in date order."""
        return {}

    def _params(self, ticker: str) -> dict:
        if ticker not in self.params_:
            raise ValueError(f"{type(self).__name__} was not fitted on {ticker}")
        return self.params_[ticker]


BASELINES: dict[str, type[Baseline]] = {}  # name -> class, in the order the backtest lists them


def register(name: str) -> Callable[[type[Baseline]], type[Baseline]]:
    """Class decorator: make a `Baseline` a backtest competitor under `name`."""

    def add(cls: type[Baseline]) -> type[Baseline]:
        if name in BASELINES:
            raise ValueError(f"a baseline is already registered as {name!r}: {BASELINES[name].__name__}")
        BASELINES[name] = cls
        return cls

    return add


def history(bars: pd.DataFrame, tickers=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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
    windows: WindowSet,
    levels: tuple[float, ...],
    quantiles: np.ndarray,
    coverage: Sequence[float],
    point: np.ndarray | None = None,
) -> BaselineForecast:
    """Intervals = the central quantiles, in prices: [N, H, Q] -> forecast.

    The point forecast is the median, or `point` [N, H] (cumulative log returns) for a baseline
    whose point path is not its median: the naive forecast stays the last price.
    """
    base = windows.last_price[:, None]
    point = quantiles[:, :, level_index(levels, 0.5)] if point is None else point
    bounds = {
        c: tuple(base * np.exp(quantiles[:, :, level_index(levels, x)]) for x in ((1 - c) / 2, (1 + c) / 2))
        for c in coverage
    }
    return BaselineForecast(point, base * np.exp(point), bounds, levels, quantiles)
