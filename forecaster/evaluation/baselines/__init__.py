"""Baselines of the backtest, one module each, registered by name in `BASELINES`.

- `base`: the `Baseline` every one is (one constructor, one per-ticker fit loop), its answer
  `BaselineForecast`, `forecast_from_quantiles` and the registry (`BASELINES`, `register`)
- `point`: baselines with a point path and the quantiles of their own in-sample errors
- `volatility`: baselines whose quantiles follow the volatility state up to each origin
- `naive`, `drift`, `arima` (point); `garch`, `ewma`, `historical`, `gjr_garch`, `har_qr` (volatility)
- `calibrated`: `CalibratedBaseline`, a baseline through the model's CQR (`garch+cqr`, ...)

Adding a baseline: a module with a `Baseline` subclass decorated `@register("name")`, and its
import below; the backtest then runs it by that name.
"""

from forecaster.evaluation.baselines.base import (
    BASELINES,
    Baseline,
    BaselineForecast,
    check_levels,
    forecast_from_quantiles,
    level_index,
    register,
)

# One import a baseline registers it; their order is the order of the backtest's tables.
# isort: off
from forecaster.evaluation.baselines.naive import NaiveForecaster
from forecaster.evaluation.baselines.drift import DriftForecaster
from forecaster.evaluation.baselines.arima import ArimaForecaster
from forecaster.evaluation.baselines.garch import GarchForecaster
from forecaster.evaluation.baselines.ewma import EwmaForecaster
from forecaster.evaluation.baselines.historical import HistoricalForecaster
from forecaster.evaluation.baselines.gjr_garch import GjrGarchForecaster
from forecaster.evaluation.baselines.har_qr import HarQuantileForecaster
from forecaster.evaluation.baselines.calibrated import CalibratedBaseline
# isort: on

__all__ = [
    "BASELINES",
    "ArimaForecaster",
    "Baseline",
    "BaselineForecast",
    "CalibratedBaseline",
    "DriftForecaster",
    "EwmaForecaster",
    "GarchForecaster",
    "GjrGarchForecaster",
    "HarQuantileForecaster",
    "HistoricalForecaster",
    "NaiveForecaster",
    "check_levels",
    "forecast_from_quantiles",
    "level_index",
    "register",
]
