"""What turns regime descriptors into memberships: the `Clusterer` protocol of `ClusterConfig.clusterer`.

Fuzzy c-means (`forecaster.regimes.fcm`, "fcm") is the method's. Another producer of memberships
(a learned gate, say) is a class with these members in its own file, registered with
`@CLUSTERERS.register("name")`; the forecaster fits, saves and loads it through the protocol.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Self

import numpy as np

from forecaster.config import CLUSTERERS, ClusterConfig


class Clusterer(Protocol):
    """An estimator from descriptors [N, D] to memberships [N, c] (non-negative, rows sum to 1)."""

    n_clusters_: int

    @classmethod
    def from_config(cls, config: ClusterConfig) -> Self:
        """An unfitted instance with the settings of `config`."""
        ...

    def fit(self, descriptors: np.ndarray, centers: np.ndarray | None = None) -> Self:
        """Fit on [N, D]; `centers` [c, D] in descriptor units (a warm start), else a seeded random start."""
        ...

    def predict(self, descriptors: np.ndarray) -> np.ndarray:
        """Memberships of new rows: [N, D] -> [N, c]."""
        ...

    def descriptor_centers(self) -> np.ndarray:
        """A typical descriptor row of each cluster, in descriptor units: [c, D] (names the regimes)."""
        ...

    def reorder(self, order: np.ndarray) -> Self:
        """Renumber the clusters: new cluster k is old cluster `order[k]` (memberships follow)."""
        ...

    def summary(self) -> dict[str, float]:
        """Numbers about the fit worth keeping in the model's metrics."""
        ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Self: ...


def make_clusterer(config: ClusterConfig) -> Clusterer:
    """The unfitted clusterer `config.clusterer` names."""
    return CLUSTERERS.get(config.clusterer).from_config(config)


def fit_clusterer(
    config: ClusterConfig, descriptors: np.ndarray, start: Clusterer | None = None
) -> Clusterer:
    """The clusterer `config.clusterer` names, fitted on `descriptors` [N, D], calmest cluster first.

    A clusterer numbers its clusters by the luck of its start, so `u_0` would mean "calm" in one
    fit and "turbulent" in the next. Renumbering them by volatility right after fitting, before
    anything reads a membership, makes cluster k (expert k, `u_k`) the k-th calmest in every fit.
    `start`, a fitted clusterer (a warm refit's previous fit): its c is kept (the experts it
    warm-starts are one per cluster) and its centers are where the iterations begin.
    """
    if start is None:
        clusterer = make_clusterer(config).fit(descriptors)
    else:
        fixed = dataclasses.replace(config, n_clusters=start.n_clusters_)
        clusterer = make_clusterer(fixed).fit(descriptors, centers=start.descriptor_centers())
    return clusterer.reorder(volatility_order(clusterer.descriptor_centers(), config.descriptors))


def volatility_order(raw_centers: np.ndarray, descriptors: tuple[str, ...]) -> np.ndarray:
    """Cluster numbers from the calmest center to the most turbulent: [c, D] -> [c].

    By `log_volatility`; without it, by the largest move relative to volatility or the size of the
    cumulative return, and as found when no descriptor speaks of risk.
    """
    for name in ("log_volatility", "max_abs_move", "cum_return"):
        if name in descriptors:
            key = raw_centers[:, descriptors.index(name)]
            return np.argsort(np.abs(key) if name == "cum_return" else key, kind="stable")
    return np.arange(len(raw_centers))


def load_clusterer(config: ClusterConfig, arrays: dict[str, Any]) -> Clusterer:
    """The fitted clusterer `config.clusterer` names, from its saved arrays (`fcm.npz`)."""
    return CLUSTERERS.get(config.clusterer).from_arrays(arrays)
