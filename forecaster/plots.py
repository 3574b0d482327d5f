"""PNG plots for people: forecasts against what happened, and regimes (memberships) over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from forecaster.model import Prediction  # noqa: E402
from forecaster.windows import WindowSet  # noqa: E402


def plot_forecast_vs_actual(
    windows: WindowSet,
    pred: Prediction,
    ticker: str,
    path: Path,
    *,
    horizon: int | None = None,
    last_n: int = 250,
) -> Path:
    """Actual price and the h-step-ahead forecast with its conformal bands, on labelled windows."""
    h = (horizon or pred.price.shape[1]) - 1
    rows = np.flatnonzero(windows.ticker == ticker)[-last_n:]
    target_dates = pd.to_datetime(windows.target_dates[rows, h])
    actual = windows.target_prices()[rows, h]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for level, alpha in zip(sorted(pred.intervals, reverse=True), (0.15, 0.3), strict=False):
        lo, hi = pred.intervals[level]
        ax.fill_between(
            target_dates,
            lo[rows, h],
            hi[rows, h],
            alpha=alpha,
            color="tab:blue",
            label=f"{round(100 * level)}% interval",
            linewidth=0,
        )
    ax.plot(target_dates, actual, color="black", linewidth=1.2, label="actual")
    ax.plot(
        target_dates,
        pred.price[rows, h],
        color="tab:blue",
        linewidth=1,
        label=f"forecast ({h + 1}-day ahead)",
    )
    ax.set_title(f"{ticker}: {h + 1}-day-ahead forecast vs actual (adjusted close)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_memberships(windows: WindowSet, memberships: np.ndarray, ticker: str, path: Path) -> Path:
    """Price on top, the fuzzy regime memberships of each window as a stacked area below."""
    rows = np.flatnonzero(windows.ticker == ticker)
    dates = pd.to_datetime(windows.origin[rows])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(2, 1))
    top.plot(dates, windows.last_price[rows], color="black", linewidth=1)
    top.set_yscale("log")
    top.set_title(f"{ticker}: price and fuzzy regime memberships")
    top.grid(alpha=0.3)
    u = memberships[rows]
    bottom.stackplot(dates, u.T, labels=[f"cluster {k}" for k in range(u.shape[1])], alpha=0.85)
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("membership")
    bottom.legend(loc="upper left", ncols=u.shape[1], fontsize="small")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
