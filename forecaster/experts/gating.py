"""The end-to-end fine-tune: experts and a trainable gate on the loss of the fused forecast.

With a learned clusterer (`forecaster.regimes.learned`) the fusion weights of the joint fine-tune
are the gate network's memberships of each window's regime descriptors, u = g(d), not fixed
numbers, so the fused pinball loss trains the gate along with the experts: the gate learns
which expert to trust where, instead of only where the descriptors cluster.

Two terms keep that from degenerating (weights in `TrainConfig`, defaults in its comments):
- load balancing (Shazeer et al. 2017): the squared coefficient of variation of the experts'
  mean memberships in the batch. A gate trained on the fused loss alone can hand every window
  to the expert that is best on average and starve the others, which then never get the
  windows that would make them good at something.
- an entropy floor: a hinge on each window's normalised membership entropy below the floor.
  Memberships that become one-hot turn the gate into a hard switch whose errors cost a whole
  expert's forecast and whose gradients vanish at the saturated softmax.
Both act only in training; validation (early stopping) scores the fused loss alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from forecaster.config import TrainConfig
from forecaster.experts.network import ExpertEnsemble, fuse


class GatedEnsemble(nn.Module):
    """The experts and the gate as one module: (windows [B, L, F], descriptors [B, D]) -> (y, u).

    One module so the training loop's optimiser, gradient clipping and early stopping (which keeps
    the best epoch's weights of both together) see all of it; `param_groups` gives the gate its
    own learning rate: a few hundred weights that start at a good solution move at another pace
    than the LSTMs.
    """

    def __init__(self, experts: ExpertEnsemble, gate: nn.Module, gate_lr: float):
        super().__init__()
        self.experts, self.gate, self.gate_lr = experts, gate, gate_lr

    def forward(self, x: torch.Tensor, descriptors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.experts(x), self.gate(descriptors)  # [B, K, H, Q], [B, K]

    def param_groups(self, lr: float) -> list[dict]:
        return [
            {"params": list(self.experts.parameters()), "lr": lr},
            {"params": list(self.gate.parameters()), "lr": self.gate_lr},
        ]


def balance_penalty(u: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation of the experts' mean memberships: [B, K] -> []. 0 when even."""
    importance = u.mean(dim=0)  # [K]
    return importance.var(unbiased=False) / importance.mean().square()


def entropy_shortfall(u: torch.Tensor, floor: float) -> torch.Tensor:
    """Mean of how far each window's normalised membership entropy falls below `floor`: [B, K] -> []."""
    entropy = -(u * u.clamp_min(1e-12).log()).sum(dim=-1) / math.log(u.shape[-1])  # [B], in [0, 1]
    return torch.relu(floor - entropy).mean()


def gate_penalty(u: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """What the gate pays besides the fused loss: load balancing and the entropy floor (hinge weight 1)."""
    return config.gate_balance * balance_penalty(u) + entropy_shortfall(u, config.gate_entropy_floor)


def gated_loss(module: nn.Module, batch, gather, loss, config: TrainConfig) -> torch.Tensor:
    end, y, descriptors = batch  # [B], [B, H], [B, D]
    outputs, u = module(gather(end), descriptors)  # [B, K, H, Q], [B, K]
    fused = loss(fuse(u, outputs.float()), y).mean()
    if module.training:  # validation judges the forecast alone
        fused = fused + gate_penalty(u, config)
    return fused.reshape(1)
