"""Chronological splits of windows with a gap, so no target crosses a block boundary."""

from __future__ import annotations

import numpy as np

from forecaster.config import WindowConfig
from forecaster.features.windows import WindowSet


def split_windows(windows: WindowSet, config: WindowConfig) -> dict[str, WindowSet]:
    """Chronological train / val / calib / test split with a gap, on the calendar of all windows.

    The calendar (every trading date any window touches) is cut at the shares of
    `WindowConfig`: training, then validation (early stopping), calibration of the quantiles
    (empty when `calib_fraction` is 0: calibration then uses validation), then test. A window
    belongs to a block only if all its target days lie inside it, and the first target day of
    a block starts `gap` trading days after the block before ends, so no target crosses a
    boundary and no later block's future overlaps an earlier one.
    """
    calendar = np.unique(np.concatenate([windows.origin, windows.target_dates.ravel()]))
    calendar = calendar[~np.isnat(calendar)]
    n = len(calendar)
    test_start = int(n * (1 - config.test_fraction)) if config.test_fraction > 0 else n
    calib_start = (
        int(n * (1 - config.test_fraction - config.calib_fraction))
        if config.calib_fraction > 0
        else test_start
    )
    val_start = int(n * (1 - config.test_fraction - config.calib_fraction - config.val_fraction))
    gap = config.split_gap
    first = np.searchsorted(calendar, windows.target_dates[:, 0])  # calendar index of the first target day
    last = np.searchsorted(calendar, windows.target_dates[:, -1])
    last = np.where(np.isnat(windows.target_dates[:, -1]), n, last)  # unlabelled windows belong to no block
    block = lambda lo, hi: (first >= lo + gap) & (last < hi)  # noqa: E731
    masks = {
        "train": last < val_start,
        "val": block(val_start, calib_start),
        "calib": block(calib_start, test_start) if calib_start < test_start else np.zeros(len(first), bool),
        "test": block(test_start, n),
    }
    splits = {name: windows.subset(mask) for name, mask in masks.items()}
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise ValueError(
                f"the {name} split is empty: give more data or change val_fraction/calib_fraction/test_fraction"
            )
    return splits
