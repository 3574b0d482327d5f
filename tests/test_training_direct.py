"""The training machinery on its own: u^m weights and hard gate weights, per-expert early stopping that
restores each expert's best epoch, and the fine-tune that runs its own epochs on the fused output."""

import numpy as np
import pytest
import torch

from forecaster.config import TrainConfig
from forecaster.experts.heads import QuantileHead
from forecaster.experts.network import ExpertEnsemble, fuse
from forecaster.experts.training import TrainingData, _ExpertBlock, fine_tune, on_epoch, train_experts
from forecaster.regimes.gates import HardGate, membership_weights

LEVELS = (0.1, 0.5, 0.9)


def test_membership_weights_are_u_to_the_m_normalised_to_mean_one_per_expert():
    u = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    w = membership_weights(u, 2.0)
    raw = u**2  # [[.81, .01], [.36, .16], [.04, .64], [.25, .25]]: column means .365 and .265
    np.testing.assert_allclose(w, raw / np.array([0.365, 0.265]), rtol=1e-6)
    np.testing.assert_allclose(w.mean(axis=0), [1.0, 1.0], rtol=1e-6)
    # A larger fuzzifier concentrates each expert on its own windows.
    assert membership_weights(u, 3.0)[0, 0] > w[0, 0] and membership_weights(u, 3.0)[0, 1] < w[0, 1]


def test_hard_gate_trains_each_expert_on_its_own_cluster_with_mean_one():
    u = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])
    w = HardGate().training_weights(u, 2.0)
    # Expert 0 owns 3 of 4 windows (weight 4/3 each), expert 1 owns one (weight 4).
    np.testing.assert_allclose(w, [[4 / 3, 0], [4 / 3, 0], [0, 4], [4 / 3, 0]], rtol=1e-6)
    np.testing.assert_array_equal(HardGate().fusion_weights(u), [[1, 0], [1, 0], [0, 1], [1, 0]])


def toy_data(n=300, seed=0):
    """Windows of noise whose training target is +1 for everyone; see the test for validation."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n + 10, 2, generator=g)
    offsets = torch.arange(-4, 1)
    gather = lambda end: features[end[:, None] + offsets]  # noqa: E731
    return torch.arange(4, n + 4), gather


def test_an_expert_whose_validation_loss_rises_stops_and_keeps_its_best_epoch_while_another_trains_on():
    torch.manual_seed(0)
    ends, gather = toy_data()
    n = len(ends)
    y_train = torch.ones(n, 1)
    w_train = torch.ones(n, 2)
    # Validation: expert 0 is judged on windows whose target is -1 (it learns +1, so its loss rises
    # from the first epoch on), expert 1 on windows whose target is +1.
    half = n // 2
    y_val = torch.cat([-torch.ones(half, 1), torch.ones(n - half, 1)])
    w_val = torch.zeros(n, 2)
    w_val[:half, 0], w_val[half:, 1] = 2.0, 2.0
    ensemble = ExpertEnsemble(2, 2, 1, n_outputs=3, median_index=1, hidden_size=4, dropout=0.0)
    data = TrainingData(
        (ends, y_train, w_train), (ends, y_val, w_val), gather, QuantileHead(LEVELS).window_loss
    )
    config = TrainConfig(epochs=8, batch_size=50, lr=0.02, patience=2, device="cpu", seed=0)
    snapshots = []  # expert 0's weights after every epoch
    block0 = _ExpertBlock(ensemble, 0)
    with on_epoch(lambda stage, row: snapshots.append(block0.state_dict())):
        history = train_experts(ensemble, data, config, False)
    v0 = [row["expert_0/val_loss"] for row in history]
    v1 = [row["expert_1/val_loss"] for row in history]
    best0 = int(np.argmin(v0))
    assert len(history) == 8  # expert 1 kept the loop going to the last epoch
    assert best0 <= 1 and v0[-1] > v0[best0]  # expert 0 got worse ...
    assert v1[-1] < v1[0]  # ... while expert 1 improved
    restored = block0.state_dict()
    for name, value in snapshots[best0].items():  # expert 0 is back at its best epoch
        torch.testing.assert_close(restored[name], value, rtol=0, atol=0)
    assert any(not torch.equal(restored[k], snapshots[-1][k]) for k in restored)


def test_fine_tune_runs_its_own_epochs_on_the_loss_of_the_fused_output():
    torch.manual_seed(1)
    ends, gather = toy_data(seed=1)
    n = len(ends)
    y = torch.linspace(-1, 1, n)[:, None]
    u = torch.softmax(torch.randn(n, 2), dim=1)
    ensemble = ExpertEnsemble(2, 2, 1, n_outputs=3, median_index=1, hidden_size=4, dropout=0.0)
    before = {k: v.clone() for k, v in ensemble.state_dict().items()}
    loss = QuantileHead(LEVELS).window_loss
    config = TrainConfig(epochs=7, fine_tune_epochs=2, fine_tune_lr=0.01, patience=10, device="cpu")
    history = fine_tune(ensemble, TrainingData((ends, y, u), (ends, y, u), gather, loss), config, False)
    assert [row["epoch"] for row in history] == [1, 2]  # fine_tune_epochs, not epochs
    assert set(history[0]) == {"epoch", "fused/train_loss", "fused/val_loss"}
    # The restored ensemble's loss on the fused forecast sum_k u_k y_k is the best recorded one.
    with torch.no_grad():
        fused = loss(fuse(u, ensemble(gather(ends))), y).mean().item()
    assert fused == pytest.approx(min(row["fused/val_loss"] for row in history), rel=1e-6)
    changed = {k for k, v in ensemble.state_dict().items() if not torch.equal(v, before[k])}
    assert {"head_weight", "head_bias"} <= changed and any(k.startswith("lstm.") for k in changed)
