"""Standardization of the daily features with statistics of the training windows only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecaster.features.windows import WindowSet

_EPS = 1e-12


@dataclass
class FeatureScaler:
    """Standardizes features with statistics of the training windows only.

    (The targets need no scaler: they are in units of the origin's volatility, see
    `features.volatility.standardized_targets`.)
    """

    mean: np.ndarray | None = None  # [F]
    std: np.ndarray | None = None  # [F]

    def fit(self, windows: WindowSet) -> FeatureScaler:
        """Mean and std over every day of every window, as if the windows were materialised.

        A day inside k windows counts k times, so each row of `features` is weighted by how
        many windows cover it (a difference array: +1 where a window starts, -1 after it ends).
        """
        starts = np.bincount(windows.end - windows.window + 1, minlength=len(windows.features) + 1)
        stops = np.bincount(windows.end + 1, minlength=len(windows.features) + 1)
        weight = np.cumsum(starts - stops)[:-1].astype(np.float64)  # [T] windows covering each row
        used = weight > 0
        w, flat = weight[used, None], windows.features[used].astype(np.float64)  # [T', 1], [T', F]
        self.mean = (w * flat).sum(axis=0) / w.sum()
        self.std = np.maximum(np.sqrt((w * (flat - self.mean) ** 2).sum(axis=0) / w.sum()), _EPS)
        return self

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        """Scale any [..., F] array: windows [N, L, F], a batch, or `WindowSet.features` [T, F]
        (elementwise, so scaling the features and then gathering equals the reverse)."""
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_arrays(cls, arrays) -> FeatureScaler:
        """Also reads scaler.npz files that still hold an unused `target_std`."""
        return cls(np.asarray(arrays["mean"]), np.asarray(arrays["std"]))
