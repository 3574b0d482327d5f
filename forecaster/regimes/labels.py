"""Regimes a person can read: names for fuzzy clusters, and regime-shift flags for a ticker.

A cluster's label comes from its center in the regime descriptors: its volatility rank among
the clusters ("calm" ... "turbulent") and the sign of its cumulative return ("rising" /
"falling"), e.g. "turbulent, falling". Clusters are numbered calmest first
(`forecaster.regimes.clusterer.fit_clusterer`), so `u_0` is the calmest regime in every fit.
"""

from __future__ import annotations

import numpy as np

_VOLATILITY_WORDS = {2: ("calm", "turbulent"), 3: ("calm", "normal", "turbulent")}


def volatility_words(n: int) -> tuple[str, ...]:
    if n in _VOLATILITY_WORDS:
        return _VOLATILITY_WORDS[n]
    return ("calm", *[f"moderate {i}" for i in range(1, n - 1)], "turbulent")


def cluster_labels(raw_centers: np.ndarray, descriptors: tuple[str, ...]) -> list[str]:
    """One label per cluster from its center in raw (unstandardized) descriptor units: [c, D] -> [c]."""
    c = len(raw_centers)
    parts: list[list[str]] = [[] for _ in range(c)]
    if "log_volatility" in descriptors:
        rank = np.argsort(np.argsort(raw_centers[:, descriptors.index("log_volatility")]))
        words = volatility_words(c)
        for k in range(c):
            parts[k].append(words[rank[k]])
    for name in ("cum_return", "trend_strength"):
        if name in descriptors:
            for k in range(c):
                parts[k].append("rising" if raw_centers[k, descriptors.index(name)] > 0 else "falling")
            break
    labels = [", ".join(p) or f"cluster {k}" for k, p in enumerate(parts)]
    # Two clusters may share words; keep labels unique so people can tell them apart.
    for label in set(labels):
        same = [k for k, other in enumerate(labels) if other == label]
        if len(same) > 1:
            for i, k in enumerate(same, start=1):
                labels[k] = f"{label} ({i})"
    return labels


def regime_shift(
    memberships: np.ndarray, trailing: int = 20, margin: float = 0.1
) -> tuple[int, bool, np.ndarray]:
    """Dominant regime of the newest window, and whether it moved away from the recent past.

    `memberships` [T, c] are a ticker's windows in date order (the newest last). A shift is flagged
    when today's dominant regime differs from the dominant regime of the trailing `trailing`-day
    mean memberships, and leads it by at least `margin` (so a coin-flip day is not an alert).
    Returns (dominant, shifted, trailing mean memberships [c]).
    """
    today = memberships[-1]
    past = memberships[-trailing - 1 : -1] if len(memberships) > 1 else memberships
    mean = past.mean(axis=0)
    dominant, usual = int(today.argmax()), int(mean.argmax())
    shifted = dominant != usual and today[dominant] - today[usual] >= margin
    return dominant, bool(shifted), mean
