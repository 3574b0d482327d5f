"""The naive (random-walk) baseline: every future price equals the last one."""

from __future__ import annotations

import numpy as np

from forecaster.evaluation.baselines.base import register
from forecaster.evaluation.baselines.point import PointBaseline


@register("naive")
class NaiveForecaster(PointBaseline):
    """Random walk: every future price equals the last one."""

    def _forecast_returns(self, params, returns):
        return np.zeros((len(returns), self.window.horizon))
