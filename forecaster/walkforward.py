"""Historical forecasts: what one forecaster would have said at every past origin.

The model's own walk-forward, like Darts' `historical_forecasts` or NeuralForecast's
`cross_validation`: every `refit_every` trading days a fresh copy is fitted on the bars up to
and including that day only, then forecasts every origin until the next refit. Called through
`FuzzyLSTMForecaster.historical_forecasts`. This module sits below `forecaster.model` and never
imports it (it refits `type(model)(config)`), so the model can offer the method; the backtest
of every competitor on the same origins is `forecaster.evaluation.backtest.walk_forward`.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np
import pandas as pd

from forecaster.features.windows import make_windows

log = logging.getLogger(__name__)


def historical_forecasts(
    model,
    bars: pd.DataFrame,
    *,
    start=None,
    end=None,
    refit_every: int | None = 250,
    train_days: int | None = None,
    progress: bool | None = False,
) -> pd.DataFrame:
    """One row per ticker, origin and horizon: the forecast made then, and what happened.

    Origins are the trading days in [start, end] whose next H days are in `bars` (so `actual`
    is always known). `refit_every=None` forecasts every origin with `model` as it is (no
    refit; origins inside its training data then see their own targets). Otherwise each copy
    gets `test_fraction=0` and the bars dated up to its refit day: all of them, or the last
    `train_days` per ticker. Columns: fold, refit_date, ticker, origin, horizon, target_date,
    last_price, forecast, quantile_<level>..., lower_XX / upper_XX, u_k, expert_k, actual.
    """
    window = model.config.window
    windows = make_windows(bars, window)  # labelled: every origin's targets are in `bars`
    lo = np.datetime64(pd.Timestamp(start).date()) if start is not None else windows.origin.min()
    hi = np.datetime64(pd.Timestamp(end).date()) if end is not None else windows.origin.max()
    in_range = (windows.origin >= lo) & (windows.origin <= hi)
    origins = np.unique(windows.origin[in_range])
    if len(origins) == 0:
        raise ValueError(
            f"no origin between {lo} and {hi} with {window.horizon} trading days of data after it"
        )
    if refit_every is not None and refit_every < 1:
        raise ValueError(f"refit_every must be >= 1 trading day or None, got {refit_every}")
    if refit_every is None:
        _check_no_refit(model, origins[0])
        refits = origins[:1]
    else:
        refits = origins[::refit_every]
        config = dataclasses.replace(
            model.config, window=dataclasses.replace(window, test_fraction=0.0)
        )  # the refit day's bars are all training data
    parts = []
    for fold, refit in enumerate(refits):
        stop = refits[fold + 1] if fold + 1 < len(refits) else origins[-1] + 1
        test = windows.subset(in_range & (windows.origin >= refit) & (windows.origin < stop))
        fitted = model
        if refit_every is not None:
            train_bars = bars[bars["date"].to_numpy("datetime64[D]") <= refit]
            if train_days is not None:
                train_bars = train_bars.groupby("ticker", sort=False).tail(train_days + 1)
            fitted = type(model)(config).fit(train_bars, progress=progress)
            log.info(
                "fold %d/%d: refit on %s, %d origins",
                fold + 1,
                len(refits),
                refit,
                len(np.unique(test.origin)),
            )
        frame = fitted.to_frame(test, fitted.predict_windows(test)).rename(columns={"as_of": "origin"})
        frame["target_date"] = pd.to_datetime(test.target_dates.ravel())  # the data's own sessions
        frame["actual"] = test.target_prices().ravel()
        frame.insert(0, "refit_date", pd.Timestamp(refit))
        frame.insert(0, "fold", fold)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


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
