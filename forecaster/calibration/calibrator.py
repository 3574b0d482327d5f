"""The `Calibrator` protocol of `TrainConfig.calibrator`: fused quantiles in, calibrated quantiles out.

"cqr" is conformalized quantile regression (`forecaster.calibration.cqr.QuantileCalibrator`);
"cqr_regime" is CQR per dominant regime (`forecaster.calibration.regime.RegimeQuantileCalibrator`).
Another calibration is a class with these members, registered with `@CALIBRATORS.register("name")`;
the forecaster fits one per fusion rule on the calibration block, saves and loads it.

The forecaster passes every call the windows' memberships [N, c] (the clusterer's, rows summing to 1,
cluster 0 the calmest), so a calibration may depend on the regime; one that does not ignores them.
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np

from forecaster.config import CALIBRATORS


class Calibrator(Protocol):
    """Built from the quantile levels: `Calibrator(levels)`; everything in volatility units."""

    def fit(self, actual: np.ndarray, quantiles: np.ndarray, memberships: np.ndarray | None = None) -> Self:
        """actual [N, H] outcomes, forecast quantiles [N, H, Q] and memberships [N, c] of the calibration block."""
        ...

    def transform(self, quantiles: np.ndarray, memberships: np.ndarray | None = None) -> np.ndarray:
        """Calibrated quantiles: [N, H, Q] (and the windows' memberships [N, c]) -> [N, H, Q], non-crossing."""
        ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Self: ...


def make_calibrator(name: str, levels: tuple[float, ...]) -> Calibrator:
    return CALIBRATORS.get(name)(levels)


def load_calibrator(name: str, arrays: dict[str, Any]) -> Calibrator:
    return CALIBRATORS.get(name).from_arrays(arrays)
