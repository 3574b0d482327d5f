"""The LSTM networks: one expert, the ensemble of K experts, and the fuzzy fusion of their outputs."""

from __future__ import annotations

import torch
from torch import nn


class LSTMExpert(nn.Module):
    """LSTM over a window of daily features with a linear head to H outputs (scaled log returns)."""

    def __init__(
        self, n_features: int, horizon: int, hidden_size: int = 64, num_layers: int = 1, dropout: float = 0.1
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            n_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # [B, L, F] -> [B, L, hidden]
        return self.head(self.dropout(out[:, -1]))  # last step: [B, hidden] -> [B, H]


class ExpertEnsemble(nn.Module):
    """K experts of the same architecture, evaluated on the same windows."""

    def __init__(self, n_experts: int, n_features: int, horizon: int, **expert_kwargs):
        super().__init__()
        self.experts = nn.ModuleList(
            LSTMExpert(n_features, horizon, **expert_kwargs) for _ in range(n_experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A plain loop over K nn.LSTM modules measured faster on CPU than a grouped LSTM,
        # and torch.vmap does not support nn.LSTM.
        return torch.stack([expert(x) for expert in self.experts], dim=1)  # [B, L, F] -> [B, K, H]

    @torch.inference_mode()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` in eval mode without the nn.Module call overhead: [B, L, F] -> [B, K, H].

        The same op nn.LSTM calls, on the same weights; at batch 1 on a CPU the module machinery
        costs about a third of the time, and serving is mostly batch 1.
        """
        outputs = []
        for expert in self.experts:
            lstm = expert.lstm
            h0 = torch.zeros(lstm.num_layers, x.shape[0], lstm.hidden_size, dtype=x.dtype, device=x.device)
            out, _, _ = torch.lstm(
                x, (h0, h0), lstm._flat_weights, True, lstm.num_layers, 0.0, False, False, True
            )
            outputs.append(nn.functional.linear(out[:, -1], expert.head.weight, expert.head.bias))
        return torch.stack(outputs, dim=1)


def fuse(memberships: torch.Tensor, expert_outputs: torch.Tensor) -> torch.Tensor:
    """The method's forecast, y = sum_k u_k * y_k: [B, K] x [B, K, H] -> [B, H]."""
    return torch.einsum("bk,bkh->bh", memberships, expert_outputs)


def expert_parameters(n_features: int, horizon: int, hidden_size: int, num_layers: int = 1) -> int:
    """Trainable parameters of one `LSTMExpert` (nn.LSTM keeps two bias vectors per layer)."""
    lstm = sum(
        4 * hidden_size * ((n_features if layer == 0 else hidden_size) + hidden_size + 2)
        for layer in range(num_layers)
    )
    return lstm + hidden_size * horizon + horizon


def matched_hidden_size(
    n_experts: int, n_features: int, horizon: int, hidden_size: int, num_layers: int = 1
) -> int:
    """Hidden size of one expert with about as many parameters as `n_experts` experts together."""
    target = n_experts * expert_parameters(n_features, horizon, hidden_size, num_layers)
    size = hidden_size
    while expert_parameters(n_features, horizon, size + 1, num_layers) <= target:
        size += 1
    # Of the two sizes around the target, the closer one.
    above = expert_parameters(n_features, horizon, size + 1, num_layers)
    below = expert_parameters(n_features, horizon, size, num_layers)
    return size + 1 if above - target < target - below else size
