"""The drift baseline: a random walk with the ticker's mean daily log return."""

from __future__ import annotations

import numpy as np

from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.point import PointBaseline


@register("drift")
class DriftForecaster(PointBaseline):
    """Random walk with drift: the mean daily log return of the training bars, every day ahead."""

    def _fit_returns(self, returns):
        return {"mu": float(returns.mean())}

    def _forecast_returns(self, params, returns):
        return np.full((len(returns), self.window.horizon), params["mu"])
