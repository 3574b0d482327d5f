"""Expert heads (`ExpertConfig.head`): what an expert outputs per horizon, its loss, its quantiles.

"quantile": Q outputs per horizon, the quantiles at `levels` (non-crossing, see
`network.monotone_quantiles`), trained with the pinball loss (a CRPS approximation); the calibrated
median is the point forecast. "mse": one output per horizon, the patent's literal point forecast,
trained with the squared error; it is repeated over the levels so calibration turns it into
empirical residual quantiles, and the raw fused output stays the point forecast. A new head is a
class with the `Head` members and `@HEADS.register("name")`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from forecaster.config import HEADS
from forecaster.experts.losses import pinball, squared_error


class Head(Protocol):
    """Built from the quantile levels the model serves: `Head(levels)`."""

    n_outputs: int  # Q', outputs per horizon of every expert
    median_index: int | None  # where the median sits among them (the network orders quantiles around it)

    def window_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of each forecast: [..., H, Q'] outputs and [..., H] targets -> [...]."""
        ...

    def quantiles(self, outputs: np.ndarray) -> np.ndarray:
        """Outputs as quantiles at every level: [..., H, Q'] -> [..., H, Q]."""
        ...

    def point(self, raw: np.ndarray, calibrated: np.ndarray) -> np.ndarray:
        """The point forecast from the raw and the calibrated quantiles: [..., H, Q] -> [..., H]."""
        ...


def make_head(name: str, levels: tuple[float, ...]) -> Head:
    return HEADS.get(name)(levels)


@HEADS.register("quantile")
class QuantileHead:
    def __init__(self, levels: tuple[float, ...]):
        self.levels = tuple(levels)
        self.n_outputs, self.median_index = len(self.levels), self.levels.index(0.5)
        self._levels_on: dict[torch.device, torch.Tensor] = {}  # [Q] on each device the loss ran on

    def window_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if outputs.device not in self._levels_on:
            self._levels_on[outputs.device] = torch.tensor(
                self.levels, device=outputs.device, dtype=torch.float32
            )
        return pinball(outputs, y, self._levels_on[outputs.device])

    def quantiles(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def point(self, raw: np.ndarray, calibrated: np.ndarray) -> np.ndarray:
        return calibrated[..., self.median_index]


@HEADS.register("mse")
class MSEHead:
    def __init__(self, levels: tuple[float, ...]):
        self.levels = tuple(levels)
        self.n_outputs, self.median_index = 1, None

    def window_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return squared_error(outputs[..., 0], y)

    def quantiles(self, outputs: np.ndarray) -> np.ndarray:
        return np.repeat(outputs, len(self.levels), axis=-1)

    def point(self, raw: np.ndarray, calibrated: np.ndarray) -> np.ndarray:
        return raw[..., 0]  # the fused mean: calibration would shift it to a residual median
