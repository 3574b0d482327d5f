"""Symmetric split-conformal intervals around point forecasts: the point baselines' intervals."""

from __future__ import annotations

import numpy as np


class ConformalCalibrator:
    """Symmetric split-conformal intervals around point forecasts (used by the baselines).

    Scores are absolute errors of the cumulative log return divided by `scale`; coverage is
    guaranteed marginally for exchangeable data.

    Attributes
    ----------
    quantiles_ : dict {level: ndarray [H]}, the conformal quantile of the normalized score
    """

    def __init__(self, coverage: tuple[float, ...] = (0.8, 0.95)):
        self.coverage = tuple(coverage)

    def fit(self, actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> ConformalCalibrator:
        """actual, forecast: cumulative log returns [N, H]; scale: window volatility [N]."""
        scores = np.abs(actual - forecast) / scale[:, None]  # [N, H]
        n = len(scores)
        if n < 10:
            raise ValueError(f"conformal calibration needs at least 10 validation windows, got {n}")
        self.quantiles_ = {}
        for level in self.coverage:
            # The finite-sample correction (n + 1) makes coverage >= level, not just close to it.
            rank = min(np.ceil((n + 1) * level) / n, 1.0)
            self.quantiles_[level] = np.quantile(scores, rank, axis=0, method="higher")
        return self

    def interval(
        self, forecast: np.ndarray, scale: np.ndarray, level: float
    ) -> tuple[np.ndarray, np.ndarray]:
        half = self.quantiles_[level][None, :] * scale[:, None]
        return forecast - half, forecast + half
