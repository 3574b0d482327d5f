"""What a forecast returns: the arrays of `Prediction`, and the long table people and stores read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.sessions import target_dates
from forecaster.windows import WindowSet


@dataclass
class Prediction:
    """Arrays of a forecast for N windows; log returns are cumulative from the origin."""

    log_return: np.ndarray  # [N, H] fused cumulative log return
    expert_log_return: np.ndarray  # [N, K, H] per expert, cumulative
    memberships: np.ndarray  # [N, c] fuzzy memberships of the gate (the fusion weights follow from them)
    price: np.ndarray  # [N, H] last_price * exp(log_return)
    expert_price: np.ndarray  # [N, K, H]
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> (lower, upper) prices [N, H]


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
    for level, (lo, hi) in pred.intervals.items():
        pct = round(100 * level)
        frame[f"lower_{pct}"], frame[f"upper_{pct}"] = lo.ravel(), hi.ravel()
    for j in range(pred.memberships.shape[1]):
        frame[f"u_{j}"] = np.repeat(pred.memberships[:, j], h)
    for j in range(pred.expert_price.shape[1]):
        frame[f"expert_{j}"] = pred.expert_price[:, j, :].ravel()
    return frame
