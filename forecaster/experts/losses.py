"""Losses of the expert heads (`forecaster.experts.heads`): pinball for quantiles, squared error for a point."""

from __future__ import annotations

import torch


def pinball(quantiles: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Pinball loss averaged over horizons and levels: [..., H, Q] and [..., H] -> [...]."""
    diff = y.unsqueeze(-1) - quantiles  # positive where the outcome lies above the quantile
    return torch.maximum(levels * diff, (levels - 1) * diff).mean(dim=(-2, -1))


def squared_error(point: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over horizons: [..., H] and [..., H] -> [...]."""
    return ((point - y) ** 2).mean(dim=-1)
