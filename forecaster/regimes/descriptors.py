"""Regime descriptors: a few numbers per window that the gate clusters (not the raw returns)."""

from __future__ import annotations

import numpy as np

from forecaster.config import CONTEXT
from forecaster.features.windows import WindowSet


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


def window_descriptors(windows: WindowSet, names: tuple[str, ...]) -> np.ndarray:
    """The descriptors `names` of every window, in that order: [N, D].

    Statistics of the window's own returns (`regime_descriptors`) and market context on its last
    day (`forecaster.features.market`), which tells the gate what the experts' window cannot.
    """
    own = [n for n in names if n not in CONTEXT]
    columns = dict(zip(own, regime_descriptors(windows.returns, tuple(own)).T, strict=True)) if own else {}
    if len(own) < len(names):
        context = windows.origin_context.astype(np.float64)  # [N, C]
        columns.update({n: context[:, CONTEXT.index(n)] for n in names if n in CONTEXT})
    return np.column_stack([columns[n] for n in names])
