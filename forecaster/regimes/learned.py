"""A gate that learns: fuzzy c-means memberships as a small torch network the fused loss can train.

FCM's out-of-sample rule is a softmax in disguise: u_ik = d_ik^(-2/(m-1)) / sum_j d_ij^(-2/(m-1))
is softmax_k(-log(d_ik^2) / (m - 1)). `GateNetwork` computes exactly that from the FCM centers,
and adds what training may use to move it: a per-cluster scale of every descriptor (a diagonal
metric), a per-cluster bias, a sharpness (inverse temperature) and a small tanh residual whose
output layer starts at zero. With those at their initial values (scale 1, bias 0, sharpness 1,
residual 0) the network's memberships are the FCM memberships, to rounding.

`LearnedGate` ("learned" in `CLUSTERERS`) fits FCM, builds that network and holds its weights
as plain arrays (`to_arrays`, no pickle), so saving, loading and serving treat it like FCM. The
end-to-end fine-tune (`forecaster.experts.gating`) trains a `network()` copy and hands it back
with `set_network`; from then on `predict` gives the trained memberships.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forecaster.config import CLUSTERERS, ClusterConfig
from forecaster.regimes.fcm import FuzzyCMeans, membership_diagnostics

RESIDUAL_UNITS = 16  # hidden units of the residual; the descriptors are a handful of numbers
# Trainable weights, each with its cluster axis (reorder permutes it; None: not per cluster).
PARAMETERS = {
    "centers": 0,
    "log_scale": 0,
    "bias": 0,
    "log_sharpness": None,
    "w1": None,
    "b1": None,
    "w2": 1,
}


def gate_logits(p: dict[str, torch.Tensor], xs: torch.Tensor, m: float) -> torch.Tensor:
    """Logits of the memberships from standardized descriptors: [N, D] -> [N, c].

    -log(d_ik^2) / (m - 1) is FCM's rule; the distance floor is FCM's (eps on d, so eps^2 on d^2).
    """
    diff = (xs[:, None, :] - p["centers"][None]) * p["log_scale"].exp()[None]  # [N, c, D]
    dist2 = (diff**2).sum(dim=-1).clamp_min(torch.finfo(torch.float64).eps ** 2)  # [N, c]
    fcm = -dist2.log() / (m - 1) + p["bias"]
    residual = torch.tanh(xs @ p["w1"] + p["b1"]) @ p["w2"]  # [N, c], zero until trained
    return p["log_sharpness"].exp() * fcm + residual


class GateNetwork(nn.Module):
    """Raw descriptors [B, D] -> memberships [B, c], trainable (float32), standardization fixed."""

    def __init__(self, arrays: dict[str, np.ndarray], mean: np.ndarray, scale: np.ndarray, m: float):
        super().__init__()
        self.m = m
        self.weights = nn.ParameterDict(
            {k: nn.Parameter(torch.as_tensor(arrays[k], dtype=torch.float32)) for k in PARAMETERS}
        )
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        # Memberships are ratios of distances: bf16 would round them, so the gate runs in float32.
        with torch.autocast(device_type=descriptors.device.type, enabled=False):
            xs = (descriptors.float() - self.mean) / self.scale
            return torch.softmax(gate_logits(dict(self.weights), xs, self.m), dim=-1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().double().numpy() for k, v in self.weights.items()}


@CLUSTERERS.register("learned")
class LearnedGate:
    """Fuzzy c-means memberships as a trainable network (exactly FCM's until trained).

    Parameters are FuzzyCMeans's; `random_state` also draws the residual's input weights.

    Attributes
    ----------
    n_clusters_ : int
    params_ : dict of ndarray, the network's weights (`PARAMETERS`); `centers_` [c, D] among them
    mean_, scale_ : ndarray [D], the standardization FCM fitted
    m_ : float, the fuzzifier: the softmax's temperature is m - 1
    fcm_summary_ : dict, FCM's summary (Xie-Beni, membership diagnostics) at fit time
    xie_beni_ : dict {c: index}, as FuzzyCMeans
    """

    def __init__(self, n_clusters=3, m: float = 2.0, error=1e-6, maxiter=1000, random_state: int = 0):
        self.fcm = FuzzyCMeans(n_clusters, m, error, maxiter, random_state)
        self.random_state = random_state

    @classmethod
    def from_config(cls, config: ClusterConfig) -> LearnedGate:
        return cls(config.n_clusters, config.m, config.error, config.maxiter, config.random_state)

    def fit(self, descriptors: np.ndarray, centers: np.ndarray | None = None) -> LearnedGate:
        """FCM's fit (from `centers`, a warm start, when given) as the network's starting point."""
        fcm = self.fcm.fit(descriptors, centers)
        c, d = fcm.centers_.shape
        w1 = np.random.default_rng(self.random_state).normal(0.0, 1 / np.sqrt(d), (d, RESIDUAL_UNITS))
        self.params_ = {
            "centers": fcm.centers_.copy(),
            "log_scale": np.zeros((c, d)),
            "bias": np.zeros(c),
            "log_sharpness": np.zeros(()),
            "w1": w1,
            "b1": np.zeros(RESIDUAL_UNITS),
            "w2": np.zeros((RESIDUAL_UNITS, c)),  # zero: the residual adds nothing until trained
        }
        self.mean_, self.scale_, self.m_ = fcm.mean_, fcm.scale_, float(fcm.m)
        self.n_clusters_, self.xie_beni_, self.fcm_summary_ = c, fcm.xie_beni_, fcm.summary()
        return self

    @property
    def centers_(self) -> np.ndarray:
        """The cluster centers in the standardized space, [c, D] (moved by training, if trained)."""
        return self.params_["centers"]

    def predict(self, descriptors: np.ndarray) -> np.ndarray:
        """Memberships of new rows: [N, D] -> [N, c], in float64 (FCM's own rule before training)."""
        xs = (np.atleast_2d(np.asarray(descriptors, dtype=np.float64)) - self.mean_) / self.scale_
        params = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in self.params_.items()}
        with torch.no_grad():
            return torch.softmax(gate_logits(params, torch.as_tensor(xs), self.m_), dim=-1).numpy()

    def network(self) -> GateNetwork:
        """A trainable copy of the gate (float32, on the CPU)."""
        return GateNetwork(self.params_, self.mean_, self.scale_, self.m_)

    def set_network(self, network: GateNetwork) -> LearnedGate:
        """Take the weights of a trained `network()`: `predict` gives its memberships from now on."""
        self.params_ = network.arrays()
        return self

    def descriptor_centers(self) -> np.ndarray:
        return self.centers_ * self.scale_ + self.mean_

    def reorder(self, order: np.ndarray) -> LearnedGate:
        """Renumber the clusters: new cluster k is old cluster `order[k]`, in every per-cluster weight."""
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(self.n_clusters_)):
            raise ValueError(
                f"reorder needs a permutation of 0..{self.n_clusters_ - 1}, got {order.tolist()}"
            )
        for name, axis in PARAMETERS.items():
            if axis is not None:
                self.params_[name] = np.take(self.params_[name], order, axis=axis)
        return self

    def summary(self) -> dict[str, float]:
        """FCM's summary at fit time (the trained memberships are judged by the model's metrics)."""
        return dict(self.fcm_summary_)

    def membership_diagnostics(self, descriptors: np.ndarray) -> dict[str, float]:
        """FPC, mean largest membership and entropy of this gate's memberships of `descriptors`."""
        return membership_diagnostics(self.predict(descriptors))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            **{f"gate_{k}": v for k, v in self.params_.items()},
            "m": np.array(self.m_),
            "mean": self.mean_,
            "scale": self.scale_,
            "centers": self.centers_,  # as FCM's, for readers of centers (plots, regimes.json)
        }

    @classmethod
    def from_arrays(cls, arrays) -> LearnedGate:
        missing = [f"gate_{k}" for k in PARAMETERS if f"gate_{k}" not in arrays]
        if missing:
            raise ValueError(f"the saved learned gate lacks {', '.join(missing)}: was it saved by 'fcm'?")
        gate = cls(n_clusters=len(arrays["gate_centers"]), m=float(arrays["m"]))
        gate.params_ = {k: np.asarray(arrays[f"gate_{k}"], dtype=np.float64) for k in PARAMETERS}
        gate.mean_, gate.scale_ = np.asarray(arrays["mean"]), np.asarray(arrays["scale"])
        gate.m_, gate.n_clusters_ = float(arrays["m"]), len(gate.params_["centers"])
        gate.xie_beni_, gate.fcm_summary_ = {}, {}
        return gate
