"""What turns regime descriptors into memberships: the `Clusterer` protocol of `ClusterConfig.clusterer`.

Fuzzy c-means (`forecaster.regimes.fcm`, "fcm") is the method's. Another producer of memberships
(a learned gate, say) is a class with these members in its own file, registered with
`@CLUSTERERS.register("name")`; the forecaster fits, saves and loads it through the protocol.
"""

from __future__ import annotations

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

    def fit(self, descriptors: np.ndarray) -> Self: ...

    def predict(self, descriptors: np.ndarray) -> np.ndarray:
        """Memberships of new rows: [N, D] -> [N, c]."""
        ...

    def descriptor_centers(self) -> np.ndarray:
        """A typical descriptor row of each cluster, in descriptor units: [c, D] (names the regimes)."""
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


def load_clusterer(config: ClusterConfig, arrays: dict[str, Any]) -> Clusterer:
    """The fitted clusterer `config.clusterer` names, from its saved arrays (`fcm.npz`)."""
    return CLUSTERERS.get(config.clusterer).from_arrays(arrays)
