"""What a forecast returns: the arrays of `Prediction`, and the long table people and stores read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.data.sessions import target_dates
from forecaster.features.windows import WindowSet


@dataclass
class Prediction:
    """Arrays of a forecast for N windows; log returns are cumulative from the origin."""

    log_return: np.ndarray  # [N, H] fused cumulative log return
    expert_log_return: np.ndarray  # [N, K, H] per expert, cumulative
    memberships: np.ndarray  # [N, c] fuzzy memberships of the gate (the fusion weights follow from them)
    price: np.ndarray  # [N, H] last_price * exp(log_return)
    expert_price: np.ndarray  # [N, K, H]
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # coverage -> (lower, upper) prices [N, H]
    levels: tuple[float, ...] = ()  # quantile levels, increasing
    quantiles: np.ndarray | None = None  # [N, H, Q] cumulative log-return quantiles (calibrated)

    def quantile_prices(self, last_price: np.ndarray) -> np.ndarray:
        """The quantiles as prices: [N, H, Q]."""
        return last_price[:, None, None] * np.exp(self.quantiles)


def prediction_frame(windows: WindowSet, pred: Prediction, calendar: str) -> pd.DataFrame:
    """One row per window and horizon: as_of, target_date, forecast, interval bounds, u_k, expert_k."""
    n, h = pred.price.shape
    origin = pd.to_datetime(windows.origin)
    target = target_dates(windows.origin, h, calendar)
    frame = pd.DataFrame(
        {
            "ticker": np.repeat(windows.ticker.astype(str), h),
            "as_of": np.repeat(origin, h),
            "horizon": np.tile(np.arange(1, h + 1), n),
            "target_date": target.ravel(),
            "last_price": np.repeat(windows.last_price, h),
            "forecast": pred.price.ravel(),
        }
    )
    if pred.quantiles is not None:
        prices = pred.quantile_prices(windows.last_price)
        for q, level in enumerate(pred.levels):
            frame[f"quantile_{level:g}"] = prices[:, :, q].ravel()
    for level, (lo, hi) in pred.intervals.items():
        pct = round(100 * level)
        frame[f"lower_{pct}"], frame[f"upper_{pct}"] = lo.ravel(), hi.ravel()
    for j in range(pred.memberships.shape[1]):
        frame[f"u_{j}"] = np.repeat(pred.memberships[:, j], h)
    for j in range(pred.expert_price.shape[1]):
        frame[f"expert_{j}"] = pred.expert_price[:, j, :].ravel()
    return frame
