"""The training loop: the bf16 path CUDA takes, exercised on the CPU; devices that are not there."""

import numpy as np
import pytest
import torch

from forecaster.config import TrainConfig
from forecaster.experts.devices import DeviceUnavailable, resolve_device
from forecaster.experts.heads import QuantileHead
from forecaster.experts.network import ExpertEnsemble
from forecaster.experts.training import TrainingData, train_experts


def _cpu_runs_bf16_lstm() -> bool:
    """oneDNN has a bf16 LSTM only on CPUs with bf16 instructions (AVX-512 BF16, AMX)."""
    try:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(3, 4, batch_first=True)(torch.randn(2, 5, 3))
        return True
    except RuntimeError:
        return False


@pytest.mark.skipif(
    not _cpu_runs_bf16_lstm(), reason="this CPU has no bf16 LSTM in oneDNN (no AVX-512 BF16 / AMX)"
)
def test_bf16_autocast_path_trains_on_the_cpu_with_float32_losses():
    torch.manual_seed(0)
    features = torch.randn(400, 3)  # one lazy [T, F] array; windows are gathered by end row
    offsets = torch.arange(-9, 1)
    gather = lambda end: features[end[:, None] + offsets]  # noqa: E731
    ends = torch.arange(9, 390)
    y = features[ends + 1, :1].repeat(1, 2) * 0.5  # [N, H=2] a learnable target
    weights = torch.ones(len(ends), 2)
    ensemble = ExpertEnsemble(2, 3, 2, n_outputs=3, median_index=1, hidden_size=8)
    loss = QuantileHead((0.1, 0.5, 0.9)).window_loss
    data = (ends, y, weights)
    config = TrainConfig(epochs=3, batch_size=64, precision="bf16")
    history = train_experts(ensemble, TrainingData(data, data, gather, loss), config, False)
    losses = [row["expert_0/train_loss"] for row in history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in ensemble.parameters())  # autocast never casts weights


def test_an_unavailable_device_names_what_is_available():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailable, match="available: cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        resolve_device("tpu")


def test_a_diverging_validation_loss_is_a_warning_naming_the_expert_and_epochs(caplog):
    torch.manual_seed(0)
    features = torch.randn(400, 3)
    offsets = torch.arange(-9, 1)
    gather = lambda end: features[end[:, None] + offsets]  # noqa: E731
    ends = torch.arange(9, 390)
    y = 3 * (features[ends + 1, :1] + features[ends, 1:2]).repeat(1, 2)  # [N, H=2] expert 0 learns it
    train = (ends, y, torch.tensor([[1.0, 0.0]]).repeat(len(ends), 1))  # expert 1 gets no weight
    val = (ends, -y, torch.ones(len(ends), 2))  # the opposite relation: fitting it hurts validation
    ensemble = ExpertEnsemble(2, 3, 2, n_outputs=3, median_index=1, hidden_size=8)
    loss = QuantileHead((0.1, 0.5, 0.9)).window_loss
    config = TrainConfig(epochs=8, patience=10, batch_size=64, lr=3e-2, warmup_steps=1)
    with caplog.at_level("WARNING", logger="forecaster.experts.training"):
        history = train_experts(ensemble, TrainingData(train, val, gather, loss), config, False)
    val_losses = [row["expert_0/val_loss"] for row in history]
    assert val_losses[-1] > 1.2 * min(val_losses)  # the data really diverge
    warnings = [r.getMessage() for r in caplog.records if "diverges" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("experts: expert_0's validation loss"), warnings
    best = int(np.argmin(val_losses)) + 1
    assert f"(epoch {best}) for 2 epochs" in warnings[0] and "--lr" in warnings[0]
