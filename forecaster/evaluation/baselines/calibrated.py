"""Baselines through the model's own CQR: `garch+cqr`, `ewma+cqr`, `gjr_garch+cqr`, `har_qr+cqr`.

The fuzzy model's quantiles are conformally calibrated on a block at the end of its training
data; comparing it with uncalibrated baselines would credit the LSTM with what calibration does.
`CalibratedBaseline` gives any baseline the same treatment; a subclass names the baseline.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from forecaster.calibration.cqr import QuantileCalibrator
from forecaster.evaluation.baselines.base import (
    Baseline,
    BaselineForecast,
    check_levels,
    forecast_from_quantiles,
    level_index,
    register,
)
from forecaster.evaluation.baselines.ewma import EwmaForecaster
from forecaster.evaluation.baselines.garch import GarchForecaster
from forecaster.evaluation.baselines.gjr_garch import GjrGarchForecaster
from forecaster.evaluation.baselines.har_qr import HarQuantileForecaster
from forecaster.features.splits import split_windows
from forecaster.features.windows import WindowSet, make_windows


class CalibratedBaseline(Baseline):
    """`base` fitted before a calibration block, its quantiles shifted by CQR fitted on that block.

    The block is the fuzzy model's: `features.splits.split_windows` with the window config's
    fractions and no test share, i.e. the windows of the last `calib_fraction` of the training
    calendar (the validation share when `calib_fraction` is 0), starting `gap` trading days after
    the bars before it. `base` is fitted on the bars dated before the block's calendar start,
    forecasts the block's windows (out of sample, its volatility state filtered to each origin),
    and `QuantileCalibrator` learns per horizon and level the conformal shift of the residuals in
    units of the base forecast's own scale: the half-width of its narrowest central interval.
    Forecasts are the base's quantiles shifted in those units; the base is not refitted after.
    """

    base: type[Baseline]  # the baseline it calibrates

    def fit(self, bars: pd.DataFrame) -> CalibratedBaseline:
        self.levels_ = check_levels(self.levels, self.coverage)
        calib = self._calibration_windows(bars)
        calendar = np.unique(bars["date"].to_numpy("datetime64[D]"))
        # The block's calendar start: `gap` trading days before its first target day.
        cut = calendar[np.searchsorted(calendar, calib.target_dates[:, 0].min()) - self.window.split_gap]
        self.base_ = self.base(self.window, self.coverage, self.levels_)
        self.base_.fit(bars[bars["date"].to_numpy("datetime64[D]") < cut])
        quantiles = self.base_.predict_windows(calib, bars=bars).quantiles  # [N, H, Q]
        scale = self._scale(quantiles)
        actual = np.cumsum(calib.y.astype(np.float64), axis=1)
        self.calibrator_ = QuantileCalibrator(self.levels_).fit(actual / scale, quantiles / scale[..., None])
        self.params_ = self.base_.params_
        return self

    def predict_windows(self, windows: WindowSet, bars: pd.DataFrame | None = None) -> BaselineForecast:
        """The base's forecasts from each window, calibrated (`bars` as the base reads them)."""
        quantiles = self.base_.predict_windows(windows, bars=bars).quantiles
        scale = self._scale(quantiles)[..., None]
        calibrated = self.calibrator_.transform(quantiles / scale) * scale
        return forecast_from_quantiles(windows, self.levels_, calibrated, self.coverage)

    def _calibration_windows(self, bars: pd.DataFrame) -> WindowSet:
        # The backtest's training bars hold no test block: the calendar ends with the calib block.
        splits = split_windows(make_windows(bars, self.window), replace(self.window, test_fraction=0.0))
        calib = splits["calib"] if len(splits["calib"]) else splits["val"]
        if len(calib) < 10:
            raise ValueError(f"{len(calib)} calibration windows; CQR needs at least 10")
        return calib

    def _scale(self, quantiles: np.ndarray) -> np.ndarray:
        """Half the width of the narrowest central interval: [N, H, Q] -> [N, H], floored above 0."""
        c = min(self.coverage)
        lo, hi = (level_index(self.levels_, x) for x in ((1 - c) / 2, (1 + c) / 2))
        return np.maximum((quantiles[:, :, hi] - quantiles[:, :, lo]) / 2, 1e-8)


@register("garch+cqr")
class GarchCqr(CalibratedBaseline):
    base = GarchForecaster


@register("ewma+cqr")
class EwmaCqr(CalibratedBaseline):
    base = EwmaForecaster


@register("gjr_garch+cqr")
class GjrGarchCqr(CalibratedBaseline):
    base = GjrGarchForecaster


@register("har_qr+cqr")
class HarQrCqr(CalibratedBaseline):
    base = HarQuantileForecaster
