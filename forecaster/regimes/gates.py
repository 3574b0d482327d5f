"""How memberships become expert weights: in the training loss, and in the fused forecast.

Gates (`ClusterConfig.gate`): fuzzy, the method (expert k learns from every window weighted by
u_ik^m; the forecast is sum_k u_k y_k); hard (expert k learns from its own cluster's windows and
the argmax expert forecasts); single (one LSTM for everything, a baseline). The combine rule
"equal" weighs the K fuzzy-trained experts 1/K, which isolates what the memberships add.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

COMBINES = ("fuzzy", "hard", "equal", "single")


def membership_weights(memberships: np.ndarray, m: float) -> np.ndarray:
    """Sample weights u_ik^m, normalised per expert to mean 1 so small clusters are not starved."""
    w = memberships.astype(np.float64) ** m
    return (w / w.mean(axis=0, keepdims=True)).astype(np.float32)


def training_weights(memberships: np.ndarray, gate: str, m: float) -> np.ndarray:
    """Per-window loss weight of each expert: [N, c] memberships -> [N, n_experts]."""
    if gate == "fuzzy":
        return membership_weights(memberships, m)
    if gate == "single":
        return np.ones((len(memberships), 1), dtype=np.float32)
    hard = fusion_weights(memberships, "hard").astype(np.float64)
    share = hard.mean(axis=0, keepdims=True)
    if (share == 0).any():
        log.warning("hard gate: cluster(s) %s own no window here", np.flatnonzero(share[0] == 0))
    return (hard / np.maximum(share, 1e-12)).astype(np.float32)  # mean 1 per expert, like fuzzy


def fusion_weights(memberships: np.ndarray, combine: str) -> np.ndarray:
    """Weights of the experts in the forecast: [N, c] memberships -> [N, n_experts]."""
    n, c = memberships.shape
    if combine == "fuzzy":
        return memberships.astype(np.float32)
    if combine == "hard":
        return np.eye(c, dtype=np.float32)[memberships.argmax(axis=1)]
    if combine == "equal":
        return np.full((n, c), 1.0 / c, dtype=np.float32)
    if combine == "single":
        return np.ones((n, 1), dtype=np.float32)
    raise ValueError(f"unknown combine {combine!r}: choose {', '.join(COMBINES)}")
