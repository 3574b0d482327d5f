"""Losses of the expert heads: pinball for quantiles, squared error for a point forecast."""

from __future__ import annotations

import torch


def pinball(quantiles: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Pinball loss averaged over horizons and levels: [..., H, Q] and [..., H] -> [...]."""
    diff = y.unsqueeze(-1) - quantiles  # positive where the outcome lies above the quantile
    return torch.maximum(levels * diff, (levels - 1) * diff).mean(dim=(-2, -1))


def window_loss(outputs: torch.Tensor, y: torch.Tensor, levels: torch.Tensor | None) -> torch.Tensor:
    """Loss of each forecast: [..., H, Q] outputs (Q = 1: a point forecast), [..., H] targets -> [...]."""
    if levels is None:
        return ((outputs[..., 0] - y) ** 2).mean(dim=-1)
    return pinball(outputs, y, levels)
