"""The K experts as one network: equal to K separate LSTMs, non-crossing quantiles, exact fusion."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forecaster.experts.network import ExpertEnsemble, expert_parameters, fuse, monotone_quantiles


def separate_experts(ensemble: ExpertEnsemble) -> list[tuple[nn.LSTM, torch.Tensor, torch.Tensor]]:
    """K plain nn.LSTM(h) modules holding each expert's block of the wide network's weights."""
    k_n, h = ensemble.n_experts, ensemble.hidden_size
    wide = ensemble.lstm
    experts = []
    for k in range(k_n):
        units = slice(k * h, (k + 1) * h)
        lstm = nn.LSTM(wide.input_size, h, wide.num_layers, batch_first=True)
        for name, p in wide.named_parameters():
            rows = p.view(4, k_n * h, *p.shape[1:])[:, units].reshape(4 * h, *p.shape[1:])
            if name.startswith("weight") and not name.endswith("ih_l0"):
                rows = rows[:, units]
            getattr(lstm, name).data.copy_(rows)
        experts.append((lstm, ensemble.head_weight[k].detach(), ensemble.head_bias[k].detach()))
    return experts


LAYOUTS = ("wide", "split")  # one wide call (GPUs) or K calls on each expert's slice (the CPU)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_network_equals_k_separate_lstms(layout):
    torch.manual_seed(0)
    for layers in (1, 2):
        ensemble = ExpertEnsemble(3, 2, 4, n_outputs=1, hidden_size=8, num_layers=layers).eval()
        ensemble.layout = layout
        x = torch.randn(5, 12, 2)
        with torch.no_grad():
            wide = ensemble(x)  # [B, K, H, 1]
            for k, (lstm, weight, bias) in enumerate(separate_experts(ensemble)):
                out, _ = lstm(x)
                alone = (out[:, -1] @ weight + bias).reshape(5, 4, 1)
                torch.testing.assert_close(wide[:, k], alone, rtol=0, atol=1e-6)


def test_both_layouts_give_the_same_gradients():
    torch.manual_seed(0)
    ensemble = ExpertEnsemble(3, 2, 2, n_outputs=3, median_index=1, hidden_size=4, num_layers=2, dropout=0)
    x = torch.randn(8, 6, 2)
    grads = {}
    for layout in LAYOUTS:
        ensemble.zero_grad()
        ensemble.layout = layout
        ensemble(x).pow(2).mean().backward()
        grads[layout] = {name: p.grad.clone() for name, p in ensemble.named_parameters()}
    for name, grad in grads["wide"].items():
        torch.testing.assert_close(grads["split"][name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_off_block_weights_stay_zero_through_training(layout):
    torch.manual_seed(0)
    ensemble = ExpertEnsemble(3, 2, 2, n_outputs=3, median_index=1, hidden_size=4, num_layers=2)
    ensemble.layout = layout
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=0.05, weight_decay=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        ensemble(torch.randn(8, 6, 2)).pow(2).mean().backward()
        optimizer.step()
    for name in ("weight_hh_l0", "weight_hh_l1", "weight_ih_l1"):
        weight = getattr(ensemble.lstm, name)
        assert torch.count_nonzero(weight * (1 - ensemble.mask)) == 0, name
        assert torch.count_nonzero(weight * ensemble.mask) > 0, name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=9, max_size=9), st.integers(0, 8))
def test_quantiles_never_cross(raw, median_index):
    q = monotone_quantiles(torch.tensor(raw, dtype=torch.float64), median_index)
    assert torch.all(q[1:] >= q[:-1])
    assert q[median_index] == raw[median_index]


def test_fused_quantiles_are_the_membership_weighted_sum_and_stay_ordered():
    torch.manual_seed(0)
    ensemble = ExpertEnsemble(2, 2, 3, n_outputs=5, median_index=2, hidden_size=8).eval()
    x = torch.randn(6, 10, 2)
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    with torch.no_grad():
        experts = ensemble(x)  # [B, 2, H, Q]
        fused = fuse(u, experts)
    expected = u[:, 0, None, None] * experts[:, 0] + u[:, 1, None, None] * experts[:, 1]
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(fused[0], experts[0, 0], rtol=0, atol=0)
    assert torch.all(fused[..., 1:] >= fused[..., :-1])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fast_inference_path_equals_forward(layout):
    torch.manual_seed(0)
    for layers in (1, 2):
        ensemble = ExpertEnsemble(
            3, 2, 4, n_outputs=3, median_index=1, hidden_size=8, num_layers=layers
        ).eval()
        ensemble.layout = layout
        x = torch.randn(5, 12, 2)
        with torch.no_grad():
            torch.testing.assert_close(ensemble.infer(x), ensemble(x), rtol=0, atol=1e-6)


def test_parameter_count_of_one_expert():
    for features, horizon, hidden, layers, outputs in ((2, 5, 64, 1, 1), (3, 5, 16, 2, 9)):
        one = ExpertEnsemble(
            1, features, horizon, n_outputs=outputs, median_index=0, hidden_size=hidden, num_layers=layers
        )
        assert expert_parameters(features, horizon, hidden, layers, outputs) == sum(
            p.numel() for p in one.parameters()
        )
