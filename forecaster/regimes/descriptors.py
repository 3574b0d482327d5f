"""Regime descriptors: a few numbers per window that the gate clusters (not the raw returns)."""

from __future__ import annotations

import numpy as np


def regime_descriptors(returns: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """A few numbers per window that tell market regimes apart: [N, L] returns -> [N, D].

    The fuzzy gate clusters these instead of the raw L-dimensional return vector: on the
    bundled S&P 500 sample FCM on the raw vectors collapses every center onto the mean and
    gives uniform memberships (FPC = 1/c), which would turn the ensemble into a plain average.
    """
    r = returns.astype(np.float64)
    vol = r.std(axis=1) + 1e-8
    every = {
        "cum_return": lambda: r.sum(axis=1),
        "log_volatility": lambda: np.log(vol),
        "last5_return": lambda: r[:, -5:].sum(axis=1),
        "max_abs_move": lambda: np.abs(r).max(axis=1) / vol,
        "trend_strength": lambda: r.sum(axis=1) / (vol * np.sqrt(r.shape[1])),
    }
    return np.column_stack([every[name]() for name in names])
