"""Split-conformal prediction intervals per horizon, from validation residuals.

Scores are absolute errors of the cumulative log return, divided by the window's realized
volatility, so intervals widen in turbulent regimes and narrow in calm ones (locally adaptive
split conformal); coverage is still guaranteed marginally for exchangeable data.
"""

from __future__ import annotations

import numpy as np


class ConformalCalibrator:
    """Fit on validation windows, then turn point forecasts into intervals at each coverage level.

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

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"q{level}": q for level, q in self.quantiles_.items()}

    @classmethod
    def from_arrays(cls, arrays) -> ConformalCalibrator:
        levels = {float(name[1:]): np.asarray(arrays[name]) for name in arrays}
        cal = cls(tuple(sorted(levels)))
        cal.quantiles_ = {level: levels[level] for level in cal.coverage}
        return cal


def window_scale(returns: np.ndarray) -> np.ndarray:
    """Realized volatility of each window's daily log returns: [N, L] -> [N]."""
    return np.maximum(returns.astype(np.float64).std(axis=1), 1e-6)
