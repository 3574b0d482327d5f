"""The `Calibrator` protocol of `TrainConfig.calibrator`: fused quantiles in, calibrated quantiles out.

"cqr" is conformalized quantile regression (`forecaster.calibration.cqr.QuantileCalibrator`).
Another calibration is a class with these members, registered with `@CALIBRATORS.register("name")`;
the forecaster fits one per fusion rule on the calibration block, saves and loads it.
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np

from forecaster.config import CALIBRATORS


class Calibrator(Protocol):
    """Built from the quantile levels: `Calibrator(levels)`; everything in volatility units."""

    def fit(self, actual: np.ndarray, quantiles: np.ndarray) -> Self:
        """actual [N, H] outcomes and forecast quantiles [N, H, Q] of the calibration block."""
        ...

    def transform(self, quantiles: np.ndarray) -> np.ndarray:
        """Calibrated quantiles: [N, H, Q] -> [N, H, Q], non-crossing."""
        ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Self: ...


def make_calibrator(name: str, levels: tuple[float, ...]) -> Calibrator:
    return CALIBRATORS.get(name)(levels)


def load_calibrator(name: str, arrays: dict[str, Any]) -> Calibrator:
    return CALIBRATORS.get(name).from_arrays(arrays)
