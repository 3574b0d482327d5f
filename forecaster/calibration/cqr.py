"""Calibration of forecast quantiles: conformalized quantile regression.

`QuantileCalibrator` is conformalized quantile regression, one level at a time: on a calibration
block the model never trained or early-stopped on, it measures how far the outcome falls from
each forecast quantile (in volatility units) and shifts that quantile by the matching empirical
quantile of those residuals, per horizon, so each level covers its nominal share marginally.
Applied to a point forecast repeated over the levels (the MSE head), it gives empirical
residual quantiles around the point. Registered as the "cqr" `Calibrator` (`calibration.calibrator`).
"""

from __future__ import annotations

import numpy as np

from forecaster.config import CALIBRATORS


@CALIBRATORS.register("cqr")
class QuantileCalibrator:
    """Fit on calibration windows, then shift forecast quantiles so each level covers its share.

    Attributes
    ----------
    shifts_ : ndarray [H, Q], added to the forecast quantiles (volatility units)
    """

    def __init__(self, levels: tuple[float, ...]):
        self.levels = tuple(levels)

    def fit(self, actual: np.ndarray, quantiles: np.ndarray, memberships=None) -> QuantileCalibrator:
        """actual [N, H] and forecast quantiles [N, H, Q], both in volatility units; memberships unused."""
        n = len(actual)
        if n < 10:
            raise ValueError(f"quantile calibration needs at least 10 calibration windows, got {n}")
        self.shifts_ = conformal_shifts(actual[:, :, None] - quantiles, self.levels)
        return self

    def transform(self, quantiles: np.ndarray, memberships=None) -> np.ndarray:
        """Calibrated quantiles [N, H, Q], kept non-crossing; one shift for every window."""
        return np.maximum.accumulate(quantiles + self.shifts_[None], axis=-1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"levels": np.asarray(self.levels), "shifts": self.shifts_}

    @classmethod
    def from_arrays(cls, arrays) -> QuantileCalibrator:
        cal = cls(tuple(float(q) for q in arrays["levels"]))
        cal.shifts_ = np.asarray(arrays["shifts"])
        return cal


def conformal_shifts(residual: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """The conformal shift of every horizon and level: residuals [n >= 1, H, Q] -> [H, Q]."""
    n = len(residual)
    shifts = np.empty(residual.shape[1:])
    ordered = np.sort(residual, axis=0)
    for q, level in enumerate(levels):
        # Finite-sample conformal ranks: the k-th smallest residual, k = ceil((n + 1) tau) for upper
        # levels and floor((n + 1) tau) for lower ones, so each side of an interval is at least
        # as wide as the nominal coverage asks (clipped to 1..n).
        k = np.ceil((n + 1) * level) if level >= 0.5 else np.floor((n + 1) * level)
        shifts[:, q] = ordered[int(np.clip(k, 1, n)) - 1, :, q]
    return shifts


def interval_levels(coverage: float) -> tuple[float, float]:
    """The quantile levels bounding a central interval: 0.8 -> (0.1, 0.9)."""
    return round((1 - coverage) / 2, 6), round((1 + coverage) / 2, 6)
