"""How memberships become expert weights: in the training loss, and in the fused forecast.

One vocabulary, the `Gate` rules of `forecaster.config.GATES`, names both what `ClusterConfig.gate`
trains and what `predict_windows(combine=...)` fuses: fuzzy, the method (expert k learns from every
window weighted by u_ik^m; the forecast is sum_k u_k y_k); hard (expert k learns from its own
cluster's windows and the argmax expert forecasts); single (one LSTM for everything, a baseline);
equal, fusion only (weighs the K experts another gate trained 1/K, which isolates what the
memberships add). A new rule is a class with the `Gate` members and `@GATES.register("name")`.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Protocol

import numpy as np

from forecaster.config import GATES

log = logging.getLogger(__name__)


class Gate(Protocol):
    """A routing rule from memberships [N, c] to the weights of K experts."""

    # False for a fusion-only rule: it re-weighs experts that a trainable gate fitted.
    trainable: ClassVar[bool]
    # Other rules `fit` calibrates next to this gate, so `predict_windows(combine=...)` has intervals.
    calibrated_with: ClassVar[tuple[str, ...]]

    def n_experts(self, n_clusters: int) -> int:
        """K, the experts this rule weighs for c clusters."""
        ...

    def training_weights(self, memberships: np.ndarray, m: float) -> np.ndarray:
        """Per-window loss weight of each expert: [N, c] -> [N, K] (m: the fuzzifier)."""
        ...

    def fusion_weights(self, memberships: np.ndarray) -> np.ndarray:
        """Weights of the experts in the forecast: [N, c] -> [N, K]."""
        ...


def make_gate(name: str, role: str = "gate") -> Gate:
    """The rule registered as `name`; `role` names the argument in the error ("combine")."""
    return GATES.get(name, role)()


def membership_weights(memberships: np.ndarray, m: float) -> np.ndarray:
    """Sample weights u_ik^m, normalised per expert to mean 1 so small clusters are not starved."""
    w = memberships.astype(np.float64) ** m
    return (w / w.mean(axis=0, keepdims=True)).astype(np.float32)


class _ExpertPerCluster:
    """K = c: expert k belongs to cluster k."""

    def n_experts(self, n_clusters: int) -> int:
        return n_clusters


@GATES.register("fuzzy")
class FuzzyGate(_ExpertPerCluster):
    trainable, calibrated_with = True, ("equal",)

    def training_weights(self, memberships: np.ndarray, m: float) -> np.ndarray:
        return membership_weights(memberships, m)

    def fusion_weights(self, memberships: np.ndarray) -> np.ndarray:
        return memberships.astype(np.float32)


@GATES.register("hard")
class HardGate(_ExpertPerCluster):
    trainable, calibrated_with = True, ("equal",)

    def training_weights(self, memberships: np.ndarray, m: float) -> np.ndarray:
        hard = self.fusion_weights(memberships).astype(np.float64)
        share = hard.mean(axis=0, keepdims=True)
        if (share == 0).any():
            log.warning("hard gate: cluster(s) %s own no window here", np.flatnonzero(share[0] == 0))
        return (hard / np.maximum(share, 1e-12)).astype(np.float32)  # mean 1 per expert, like fuzzy

    def fusion_weights(self, memberships: np.ndarray) -> np.ndarray:
        return np.eye(memberships.shape[1], dtype=np.float32)[memberships.argmax(axis=1)]


@GATES.register("single")
class SingleGate:
    trainable, calibrated_with = True, ()

    def n_experts(self, n_clusters: int) -> int:
        return 1

    def training_weights(self, memberships: np.ndarray, m: float) -> np.ndarray:
        return np.ones((len(memberships), 1), dtype=np.float32)

    def fusion_weights(self, memberships: np.ndarray) -> np.ndarray:
        return np.ones((len(memberships), 1), dtype=np.float32)


@GATES.register("equal")
class EqualWeights(_ExpertPerCluster):
    trainable, calibrated_with = False, ()

    def training_weights(self, memberships: np.ndarray, m: float) -> np.ndarray:
        raise ValueError("'equal' only fuses experts another gate trained; it cannot train them")

    def fusion_weights(self, memberships: np.ndarray) -> np.ndarray:
        n, c = memberships.shape
        return np.full((n, c), 1.0 / c, dtype=np.float32)
