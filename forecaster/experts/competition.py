"""The competitive objective (Jacobs, Jordan, Nowlan & Hinton 1991): experts earn their windows.

Under `TrainConfig.objective = "competitive"` expert k's weight on training window i is its
responsibility, the posterior that k produced the outcome given the gate's prior u_ik (the
gate's fusion weights) and how well k explained it:

    r_ik = u_ik exp(-loss_ik / T) / sum_j u_ij exp(-loss_ij / T)

recomputed from the experts' current losses before every epoch (the E step; the epoch of
training is the M step). The fixed u^m weights of the method train every expert on nearly the
same data when the memberships are fuzzy, so the experts agree and the gate has nothing to
choose between; responsibilities hand each window to the expert that already fits it best, and
the experts specialise. A floor keeps a share of the prior in every weight, so random experts
in the first epoch cannot take all of a window from one another.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Tensors = tuple[torch.Tensor, ...]


def responsibilities(
    prior: torch.Tensor, losses: torch.Tensor, temperature: float, floor: float
) -> torch.Tensor:
    """r_ik ~ prior_ik exp(-loss_ik / T), mixed with the prior by `floor`: [N, K], [N, K] -> [N, K].

    Rows sum to 1 when the prior's do. Computed in log space: losses / T can be large.
    """
    log_r = prior.clamp_min(1e-12).log() - losses / temperature
    return (1 - floor) * torch.softmax(log_r, dim=-1) + floor * prior


@torch.no_grad()
def window_losses(
    module: nn.Module, gather: Callable, loss: Callable, end: torch.Tensor, y: torch.Tensor, batch: int
) -> torch.Tensor:
    """Every expert's loss on every window, in eval mode (no dropout): [N] ends, [N, H] -> [N, K]."""
    module.eval()
    parts = [
        loss(module(gather(end[i : i + batch])).float(), y[i : i + batch, None, :])
        for i in range(0, len(end), batch)
    ]
    return torch.cat(parts)


def competitive_reweigh(prior: torch.Tensor, gather, loss, temperature: float, floor: float, batch: int):
    """The E step for the training loop: (module, (end, y, w)) -> (end, y, responsibilities as weights).

    Each expert's weights are normalised to mean 1 over the windows, as the u^m weights are, so a
    small expert's loss is on the scale of a large one's.
    """

    def reweigh(module: nn.Module, train: Tensors) -> Tensors:
        end, y, _ = train
        r = responsibilities(prior, window_losses(module, gather, loss, end, y, batch), temperature, floor)
        return end, y, r / r.mean(dim=0, keepdim=True).clamp_min(1e-12)

    return reweigh
