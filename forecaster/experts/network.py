"""The LSTM experts as one network, their quantile heads, and the fuzzy fusion of their outputs.

All K experts run in one recurrent pass: one wide LSTM of K*h units whose recurrent (and, from
the second layer on, input) weights are block-diagonal, so unit blocks never see each other and
the network equals K separate LSTMs of h units (tests/test_experts.py checks it). Off-block
weights start at zero and their gradients are masked to zero, so Adam never moves them.

How the pass runs depends on the device (`layout`), measured with benchmarks/bench_model.py:
on a GPU one wide call removes K-fold kernel launches; on a CPU the wide call does K times the
recurrent arithmetic (the zero blocks are multiplied too) and K calls on each expert's slice of
the same weights train about 2x faster, so the CPU runs the slices. Both give the same outputs.

Each expert's head maps its last hidden state to H x Q outputs. The quantile head is
non-crossing by construction: the median plus cumulative softplus steps up and down.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def block_mask(n_experts: int, hidden_size: int, rows_per_unit: int = 4) -> torch.Tensor:
    """[4Kh, Kh] mask: gate row of expert k's unit i may read unit j only when j is also expert k's."""
    expert_of_unit = torch.arange(n_experts * hidden_size) // hidden_size  # [Kh]
    rows = expert_of_unit.repeat(rows_per_unit)  # gate blocks i, f, g, o each span all Kh units
    return (rows[:, None] == expert_of_unit[None, :]).float()


class ExpertEnsemble(nn.Module):
    """K LSTM experts over the same window: [B, L, F] -> [B, K, H, Q] (Q = 1 for the MSE head).

    Parameters
    ----------
    n_experts, n_features, horizon : K, F, H
    n_outputs : Q, outputs per horizon (quantile levels; 1 for a point forecast)
    median_index : position of the 0.5 level among the Q outputs (quantile head only)
    """

    def __init__(
        self,
        n_experts: int,
        n_features: int,
        horizon: int,
        *,
        n_outputs: int = 1,
        median_index: int | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.1,
    ):
        super().__init__()
        if n_outputs > 1 and median_index is None:
            raise ValueError("a quantile head needs the position of the median")
        self.n_experts, self.hidden_size, self.horizon, self.n_outputs = (
            n_experts,
            hidden_size,
            horizon,
            n_outputs,
        )
        self.median_index = median_index
        width = n_experts * hidden_size
        self.lstm = nn.LSTM(
            n_features, width, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head_weight = nn.Parameter(torch.empty(n_experts, hidden_size, horizon * n_outputs))
        self.head_bias = nn.Parameter(torch.zeros(n_experts, horizon * n_outputs))
        self.register_buffer("mask", block_mask(n_experts, hidden_size), persistent=False)
        # Expert k's rows of every gate block ([K, 4h]) and its units ([K, h]) in the wide weights.
        units = torch.arange(width).reshape(n_experts, hidden_size)
        rows = torch.cat([gate * width + units for gate in range(4)], dim=1)
        self.register_buffer("expert_rows", rows, persistent=False)
        self.register_buffer("expert_units", units, persistent=False)
        self.layout = "auto"  # "wide", "split" (K calls on the slices), or "auto": split on the CPU
        self._slices: tuple[tuple, list[list[torch.Tensor]]] | None = None  # serving's cache of the slices
        # Initialise like K separate nn.LSTM(h) / nn.Linear(h): uniform(+-1/sqrt(h)), not 1/sqrt(K*h).
        bound = 1 / math.sqrt(hidden_size)
        for name, weight in self.lstm.named_parameters():
            nn.init.uniform_(weight, -bound, bound)
            if self._is_blocked(name):
                with torch.no_grad():
                    weight.mul_(self.mask)
                weight.register_hook(lambda grad: grad * self.mask)
        nn.init.uniform_(self.head_weight, -bound, bound)
        nn.init.uniform_(self.head_bias, -bound, bound)

    @staticmethod
    def _is_blocked(name: str) -> bool:
        """Recurrent weights of every layer, and input weights above the first, are block-diagonal."""
        return name.startswith("weight_hh") or (name.startswith("weight_ih") and not name.endswith("_l0"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._split(x):
            return self._head(self.dropout(self._last_split(x, self.training)))
        out, _ = self.lstm(x)  # [B, L, F] -> [B, L, K*h]
        return self._head(self.dropout(out[:, -1]))

    @torch.inference_mode()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` in eval mode without the nn.Module call overhead (serving is mostly batch 1)."""
        if self._split(x):
            return self._head(self._last_split(x, False))
        lstm = self.lstm
        h0 = torch.zeros(lstm.num_layers, x.shape[0], lstm.hidden_size, dtype=x.dtype, device=x.device)
        out, _, _ = torch.lstm(
            x, (h0, h0), lstm._flat_weights, True, lstm.num_layers, 0.0, False, False, True
        )
        return self._head(out[:, -1])

    def _split(self, x: torch.Tensor) -> bool:
        return self.layout == "split" or (self.layout == "auto" and x.device.type == "cpu")

    def _last_split(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Last hidden state [B, K*h], one LSTM call per expert on its slice of the wide weights."""
        layers = self.lstm.num_layers
        dropout = self.lstm.dropout if train else 0.0
        h0 = torch.zeros(layers, x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
        last = [
            torch.lstm(x, (h0, h0), flat, True, layers, dropout, train, False, True)[0][:, -1]
            for flat in self._expert_weights()
        ]
        return torch.cat(last, dim=1)

    def _expert_weights(self) -> list[list[torch.Tensor]]:
        """Each expert's slice of the wide weights, in torch.lstm's order.

        Gathered from the wide parameters, so in training their gradients land in the blocks.
        Without gradients (serving) the slices are kept until a parameter changes: gathering
        them costs as much as a batch-1 forecast.
        """
        weights = self.lstm._flat_weights
        if torch.is_grad_enabled():
            return self._slice(weights)
        key = tuple((w.data_ptr(), w._version) for w in weights)
        if self._slices is None or self._slices[0] != key:
            self._slices = (key, self._slice(weights))
        return self._slices[1]

    def _slice(self, weights: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        experts = []
        for rows, units in zip(self.expert_rows, self.expert_units, strict=True):
            flat = []
            for layer in range(self.lstm.num_layers):
                w_ih, w_hh, b_ih, b_hh = weights[4 * layer : 4 * layer + 4]
                w_ih = w_ih[rows] if layer == 0 else w_ih[rows][:, units]
                flat += [w_ih, w_hh[rows][:, units], b_ih[rows], b_hh[rows]]
            experts.append(flat)
        return experts

    def _head(self, last: torch.Tensor) -> torch.Tensor:
        b = last.shape[0]
        per_expert = last.reshape(b, self.n_experts, self.hidden_size)  # [B, K*h] -> [B, K, h]
        raw = torch.einsum("bkh,kho->bko", per_expert, self.head_weight) + self.head_bias  # [B, K, H*Q]
        raw = raw.reshape(b, self.n_experts, self.horizon, self.n_outputs)  # [B, K, H, Q]
        return raw if self.n_outputs == 1 else monotone_quantiles(raw, self.median_index)


def monotone_quantiles(raw: torch.Tensor, median_index: int) -> torch.Tensor:
    """Non-crossing quantiles from free outputs [..., Q]: the median, then softplus steps either way."""
    median = raw[..., median_index : median_index + 1]
    up = torch.cumsum(F.softplus(raw[..., median_index + 1 :]), dim=-1)
    down = torch.flip(torch.cumsum(F.softplus(torch.flip(raw[..., :median_index], [-1])), dim=-1), [-1])
    return torch.cat([median - down, median, median + up], dim=-1)


def fuse(weights: torch.Tensor, expert_outputs: torch.Tensor) -> torch.Tensor:
    """The method's forecast, y = sum_k u_k * y_k, for every horizon and quantile: [B, K] x [B, K, ...] -> [B, ...].

    Averaging quantiles with non-negative weights keeps them ordered.
    """
    return torch.einsum("bk,bk...->b...", weights, expert_outputs)


def expert_parameters(
    n_features: int, horizon: int, hidden_size: int, num_layers: int = 1, n_outputs: int = 1
) -> int:
    """Trainable parameters of one expert (nn.LSTM keeps two bias vectors per layer) and its head."""
    lstm = sum(
        4 * hidden_size * ((n_features if layer == 0 else hidden_size) + hidden_size + 2)
        for layer in range(num_layers)
    )
    return lstm + (hidden_size + 1) * horizon * n_outputs


def matched_hidden_size(
    n_experts: int, n_features: int, horizon: int, hidden_size: int, num_layers: int = 1, n_outputs: int = 1
) -> int:
    """Hidden size of one expert with about as many parameters as `n_experts` experts together."""
    count = lambda size: expert_parameters(n_features, horizon, size, num_layers, n_outputs)  # noqa: E731
    target = n_experts * count(hidden_size)
    size = hidden_size
    while count(size + 1) <= target:
        size += 1
    # Of the two sizes around the target, the closer one.
    return size + 1 if count(size + 1) - target < target - count(size) else size
