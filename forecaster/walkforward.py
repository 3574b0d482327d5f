"""The walk-forward loop, and one forecaster's historical forecasts through it.

A rolling-origin evaluation, like Darts' `historical_forecasts` or NeuralForecast's
`cross_validation`: the origins are the trading days in [start, end] whose next H days are known;
every `refit_every` origins a fold starts, whose fresh fit may read the bars dated up to and
including its first origin only (all of them, or the last `train_days` per ticker), and which
forecasts every origin until the next fold. `walk_forward_folds` lays the folds out (`WalkForward`);
`historical_forecasts` runs one forecaster through them (`FuzzyLSTMForecaster.historical_forecasts`),
and `forecaster.evaluation.backtest.walk_forward` runs every competitor through the same folds, as
Darts builds `backtest()` on `historical_forecasts()`. Refits are `cold` (every fold's fit starts
from scratch) or `warm` (fold k+1's fit starts from fold k's: `fit(bars, init=previous)`, so
the folds run in order). A warm refit still trains on all the fold's bars: with an expanding
window they replay every older year; with `train_days` only the last ones, and the older years
live on only in the starting weights. This module sits below `forecaster.model`
and never imports it (it refits `type(model)(config)`), so the model can offer the method.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import WindowConfig
from forecaster.features.windows import WindowSet, make_windows

log = logging.getLogger(__name__)

REFITS = ("cold", "warm")  # every fold's fit from scratch, or from the previous fold's fitted model


def check_refit(refit: str, refit_every: int | None = 250) -> str:
    """`refit` when it is one of `REFITS` (and there are refits to warm-start); else a clear error."""
    if refit not in REFITS:
        raise ValueError(f"refit must be one of {', '.join(REFITS)} (--refit), got {refit!r}")
    if refit == "warm" and refit_every is None:
        raise ValueError("refit='warm' needs refits to start from: give refit_every")
    return refit


@dataclass(frozen=True)
class Fold:
    """One refit of a walk-forward: fit on the bars up to `refit`, forecast the origins in [refit, stop)."""

    index: int
    refit: np.datetime64  # the fold's first origin, and the last day its fit may read
    stop: np.datetime64  # the next fold's first origin (or the day after the last origin)


@dataclass(frozen=True, eq=False)
class WalkForward:
    """The folds of a walk-forward over `bars`, and what each may read (see `walk_forward_folds`)."""

    bars: pd.DataFrame  # every bar: training bars before start, targets after end
    windows: WindowSet  # labelled windows of `bars`: every origin's targets are known
    origins: np.ndarray  # [n] sorted datetime64[D], the origins in [start, end]
    folds: tuple[Fold, ...]
    train_days: int | None  # None: an expanding window; else the last `train_days` bars per ticker

    def train_bars(self, fold: Fold) -> pd.DataFrame:
        """The bars dated up to and including the fold's refit day (the last `train_days` + 1 per ticker)."""
        bars = self.bars[self.bars["date"].to_numpy("datetime64[D]") <= fold.refit]
        if self.train_days is not None:
            bars = bars.groupby("ticker", sort=False).tail(self.train_days + 1)
        return bars

    def test_windows(self, fold: Fold) -> WindowSet:
        """The windows of every ticker whose origin lies in the fold."""
        origin = self.windows.origin
        return self.windows.subset((origin >= fold.refit) & (origin < fold.stop))


def walk_forward_folds(
    bars: pd.DataFrame,
    window: WindowConfig,
    *,
    start=None,
    end=None,
    refit_every: int | None = 250,
    train_days: int | None = None,
) -> WalkForward:
    """Lay out the folds: origins in [start, end] (default: every labelled origin), one fold every
    `refit_every` of them (None: a single fold, for a model used as it is)."""
    if refit_every is not None and refit_every < 1:
        raise ValueError(f"refit_every must be >= 1 trading day, got {refit_every}")
    if train_days is not None and train_days <= window.window + 2 * window.horizon:
        raise ValueError(f"train_days={train_days} is too short for windows of {window.window} days")
    windows = make_windows(bars, window)  # labelled: every origin's targets are known
    lo = np.datetime64(pd.Timestamp(start).date()) if start is not None else windows.origin.min()
    hi = np.datetime64(pd.Timestamp(end).date()) if end is not None else windows.origin.max()
    origins = np.unique(windows.origin[(windows.origin >= lo) & (windows.origin <= hi)])
    if len(origins) == 0:
        raise ValueError(
            f"no origin between {lo} and {hi} with {window.horizon} trading days of data after it"
        )
    refits = origins[:: refit_every if refit_every is not None else len(origins)]  # None: one fold
    stops = [*refits[1:], origins[-1] + 1]
    folds = tuple(Fold(i, refit, stop) for i, (refit, stop) in enumerate(zip(refits, stops, strict=True)))
    return WalkForward(bars, windows, origins, folds, train_days)


def historical_forecasts(
    model,
    bars: pd.DataFrame,
    *,
    start=None,
    end=None,
    refit_every: int | None = 250,
    train_days: int | None = None,
    progress: bool | None = False,
    refit: str = "cold",
) -> pd.DataFrame:
    """One row per ticker, origin and horizon: the forecast made then, and what happened.

    Origins are the trading days in [start, end] whose next H days are in `bars` (so `actual`
    is always known). `refit_every=None` forecasts every origin with `model` as it is (no
    refit; origins inside its training data then see their own targets). Otherwise each copy
    gets `test_fraction=0` and the bars dated up to its refit day: all of them, or the last
    `train_days` per ticker. `refit="warm"`: every copy after the first starts from the previous
    fold's fit (`model.fit(bars, init=previous)`). Columns: fold, refit_date, ticker, origin,
    horizon, target_date, last_price, forecast, quantile_<level>..., lower_XX / upper_XX, u_k,
    expert_k, actual.
    """
    warm = check_refit(refit, refit_every) == "warm"
    plan = walk_forward_folds(
        bars, model.config.window, start=start, end=end, refit_every=refit_every, train_days=train_days
    )
    if refit_every is None:
        _check_no_refit(model, plan.origins[0])
    config = model.config.with_(window={"test_fraction": 0.0})  # the refit day's bars are all training data
    parts, previous = [], None
    for fold in plan.folds:
        test = plan.test_windows(fold)
        fitted = model
        if refit_every is not None:
            start = {"init": previous} if warm and previous is not None else {}  # the first fold: cold
            fitted = previous = type(model)(config).fit(plan.train_bars(fold), progress=progress, **start)
            log.info(
                "fold %d/%d: refit on %s, %d origins",
                fold.index + 1,
                len(plan.folds),
                fold.refit,
                len(np.unique(test.origin)),
            )
        parts.append(_forecast_frame(fitted, fold, test))
    return pd.concat(parts, ignore_index=True)


def _forecast_frame(model, fold: Fold, test: WindowSet) -> pd.DataFrame:
    """The fold's forecasts as `model.to_frame` rows, with the outcomes and the fold."""
    frame = model.to_frame(test, model.predict_windows(test)).rename(columns={"as_of": "origin"})
    frame["target_date"] = pd.to_datetime(test.target_dates.ravel())  # the data's own sessions
    frame["actual"] = test.target_prices().ravel()
    frame.insert(0, "refit_date", pd.Timestamp(fold.refit))
    frame.insert(0, "fold", fold.index)
    return frame


def _check_no_refit(model, first_origin) -> None:
    if not hasattr(model, "experts_"):
        raise ValueError("refit_every=None forecasts with the model as it is: fit it first")
    trained_to = np.datetime64(model.fingerprint_["end"])
    if first_origin < trained_to:
        warnings.warn(
            f"origins from {first_origin} lie inside the model's training data (to {trained_to}): "
            "those forecasts saw their targets; use refit_every for honest ones",
            UserWarning,
            stacklevel=3,
        )
