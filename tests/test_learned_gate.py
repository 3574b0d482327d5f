"""The learned gate and the competitive objective: FCM as a network that the fused loss trains,
load balancing, experts that specialise by earning their windows, and both through save / load."""

import numpy as np
import pandas as pd
import pytest
import torch

from forecaster.config import ClusterConfig, TrainConfig
from forecaster.experts.competition import responsibilities
from forecaster.experts.heads import QuantileHead
from forecaster.experts.network import ExpertEnsemble, fuse
from forecaster.experts.training import TrainingData, fine_tune_gated, train_experts
from forecaster.model import FuzzyLSTMForecaster
from forecaster.regimes.clusterer import fit_clusterer
from forecaster.regimes.fcm import FuzzyCMeans
from forecaster.regimes.learned import LearnedGate

LEVELS = (0.1, 0.5, 0.9)
LOSS = QuantileHead(LEVELS).window_loss


def blobs(n=300, seed=0):
    """Three clouds of 3-D descriptors, the last one small."""
    rng = np.random.default_rng(seed)
    sizes, means = (n // 2, n // 3, n - n // 2 - n // 3), (0.0, 3.0, -3.0)
    return np.vstack([rng.normal(mu, 1.0, (k, 3)) for k, mu in zip(sizes, means, strict=True)])


def test_an_untrained_learned_gate_gives_the_fcm_memberships_exactly():
    x, new = blobs(), blobs(50, seed=1) * 1.5
    fcm, gate = FuzzyCMeans(3).fit(x), LearnedGate(3).fit(x)
    np.testing.assert_allclose(gate.predict(x), fcm.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gate.predict(new), fcm.predict(new), rtol=0, atol=1e-12)
    # The float32 network the fine-tune trains starts at the same memberships.
    u = gate.network()(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.abs(u - fcm.predict(x)).max() < 1e-5
    # Renumbering moves every per-cluster weight: cluster k is the old cluster order[k].
    order = np.array([2, 0, 1])
    np.testing.assert_allclose(gate.reorder(order).predict(x), fcm.predict(x)[:, order], atol=1e-12)
    np.testing.assert_allclose(gate.descriptor_centers(), fcm.descriptor_centers()[order], atol=1e-12)


def test_the_learned_clusterer_is_numbered_calmest_first_and_its_arrays_round_trip():
    x = blobs()
    names = ("log_volatility", "cum_return", "max_abs_move")
    gate = fit_clusterer(ClusterConfig(n_clusters=3, descriptors=names, clusterer="learned"), x)
    assert np.all(np.diff(gate.descriptor_centers()[:, 0]) > 0)  # the volatility column rises
    loaded = LearnedGate.from_arrays({k: np.asarray(v) for k, v in gate.to_arrays().items()})
    np.testing.assert_array_equal(loaded.predict(x), gate.predict(x))
    with pytest.raises(ValueError, match="gate_centers"):
        LearnedGate.from_arrays(FuzzyCMeans(3).fit(x).to_arrays())


def noise_windows(n, seed):
    """Windows of noise: no expert can tell one from another by its input, only a gate can."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n + 10, 2, generator=g)
    offsets = torch.arange(-4, 1)
    return torch.arange(4, n + 4), lambda end: features[end[:, None] + offsets]


def two_specialists(ends, gather, y, seed=0):
    """Two experts, expert 0 trained on the windows with target +1 and expert 1 on those with -1."""
    torch.manual_seed(seed)
    ensemble = ExpertEnsemble(2, 2, 1, n_outputs=3, median_index=1, hidden_size=4, dropout=0.0)
    w = torch.stack([(y[:, 0] > 0).float(), (y[:, 0] < 0).float()], dim=1) * 2.0
    data = TrainingData((ends, y, w), (ends, y, w), gather, LOSS)
    train_experts(ensemble, data, TrainConfig(epochs=15, batch_size=64, lr=0.05, device="cpu"), False)
    return ensemble


def fused_loss(ensemble, gate, ends, gather, y, d):
    with torch.no_grad():
        return float(LOSS(fuse(gate(d), ensemble(gather(ends))), y).mean())


def test_the_end_to_end_fine_tune_teaches_the_gate_which_expert_to_trust():
    # The target's sign is the second descriptor's, but FCM clusters the first (its two clouds
    # lie far apart), so FCM's memberships say nothing about which expert is right.
    n = 256
    rng = np.random.default_rng(0)
    d = np.column_stack([np.r_[rng.normal(-4, 0.3, n // 2), rng.normal(4, 0.3, n // 2)], rng.normal(0, 1, n)])
    y = torch.as_tensor(np.where(d[:, 1] > 0, 1.0, -1.0)[:, None], dtype=torch.float32)
    ends, gather = noise_windows(n, seed=0)
    ensemble = two_specialists(ends, gather, y)
    gate = LearnedGate(2).fit(d)
    d_t = torch.as_tensor(d, dtype=torch.float32)
    before_u, before = gate.predict(d), fused_loss(ensemble, gate.network(), ends, gather, y, d_t)
    data = TrainingData((ends, y, d_t), (ends, y, d_t), gather, LOSS)
    config = TrainConfig(
        fine_tune_epochs=20, fine_tune_lr=1e-4, batch_size=64, gate_lr=0.05, patience=20, device="cpu"
    )
    fine_tune_gated(ensemble, gate, data, config, False)
    after_u, after = gate.predict(d), fused_loss(ensemble, gate.network(), ends, gather, y, d_t)
    assert np.abs(after_u - before_u).mean() > 0.1  # the memberships moved ...
    assert after < 0.8 * before  # ... and the fused forecast got better for it
    # Expert 0 (the +1 specialist) now weighs more where the target is +1.
    assert after_u[d[:, 1] > 0, 0].mean() > after_u[d[:, 1] < 0, 0].mean() + 0.2


def gate_after_fine_tune(balance: float, seed=0):
    """Expert 0 forecasts every window well and expert 1 none: the gate wants to starve expert 1."""
    n = 256
    rng = np.random.default_rng(seed)
    d = rng.normal(0, 1, (n, 2))
    y = torch.ones(n, 1)
    ends, gather = noise_windows(n, seed)
    ensemble = two_specialists(ends, gather, torch.cat([y[: n // 2], -y[n // 2 :]]))
    gate = LearnedGate(2).fit(d)
    d_t = torch.as_tensor(d, dtype=torch.float32)
    data = TrainingData((ends, y, d_t), (ends, y, d_t), gather, LOSS)
    config = TrainConfig(
        fine_tune_epochs=20, fine_tune_lr=1e-5, batch_size=64, gate_lr=0.05, patience=20, device="cpu",
        gate_balance=balance, gate_entropy_floor=0.0,
    )  # fmt: skip
    fine_tune_gated(ensemble, gate, data, config, False)
    return gate.predict(d).mean(axis=0)


def test_load_balancing_keeps_every_expert_above_a_floor_of_the_memberships():
    unbalanced, balanced = gate_after_fine_tune(0.0), gate_after_fine_tune(2.0)
    assert unbalanced[1] < 0.1  # without the term the gate starves expert 1 ...
    assert balanced.min() > 0.25  # ... with it both keep a fair share


def test_responsibilities_follow_the_prior_times_the_fit_and_keep_the_floor():
    prior = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    losses = torch.tensor([[0.1, 0.2], [0.3, 0.1]])
    r = responsibilities(prior, losses, temperature=0.1, floor=0.0)
    e = np.exp(-1.0)
    np.testing.assert_allclose(r[0], [1 / (1 + e), e / (1 + e)], rtol=1e-6)
    np.testing.assert_allclose(r[1], [0.9 * e**2 / (0.9 * e**2 + 0.1), 0.1 / (0.9 * e**2 + 0.1)], rtol=1e-6)
    floored = responsibilities(prior, torch.tensor([[0.0, 100.0], [0.0, 0.0]]), 0.1, floor=0.2)
    np.testing.assert_allclose(floored[0], [0.9, 0.1], atol=1e-6)  # 0.8 * 1 + 0.2 * 0.5
    np.testing.assert_allclose(floored.sum(dim=1), [1.0, 1.0], rtol=1e-6)


def expert_spread(objective: str) -> float:
    """Mean |median_0 - median_1| after training on a 70/30 mixture of targets +1 and -1 that no
    input and no membership tells apart (u = 1/2 everywhere)."""
    n = 400
    ends, gather = noise_windows(n, seed=3)
    y = torch.where(torch.rand(n, 1, generator=torch.Generator().manual_seed(3)) < 0.7, 1.0, -1.0)
    torch.manual_seed(0)
    ensemble = ExpertEnsemble(2, 2, 1, n_outputs=3, median_index=1, hidden_size=4, dropout=0.0)
    half = torch.full((n, 2), 0.5)
    data = TrainingData((ends, y, torch.ones(n, 2)), (ends, y, torch.ones(n, 2)), gather, LOSS, prior=half)
    config = TrainConfig(epochs=12, batch_size=64, lr=0.05, patience=12, device="cpu", objective=objective)
    train_experts(ensemble, data, config, False)
    with torch.no_grad():
        medians = ensemble(gather(ends))[:, :, 0, 1]  # [N, K]
    return float((medians[:, 0] - medians[:, 1]).abs().mean())


def test_the_competitive_objective_makes_the_experts_specialise():
    membership, competitive = expert_spread("membership"), expert_spread("competitive")
    assert membership < 0.3  # same data, same loss: both forecast the majority's +1
    assert competitive > 1.0  # one takes the +1 windows, the other the -1 windows


@pytest.mark.parametrize(
    ("clusterer", "objective"),
    [("learned", "membership"), ("fcm", "competitive"), ("learned", "competitive")],
)
def test_learned_gates_and_objectives_survive_save_and_load(
    tiny_config, two_ticker_bars, tmp_path, clusterer, objective
):
    config = tiny_config.with_(cluster={"clusterer": clusterer}, train={"objective": objective})
    model = FuzzyLSTMForecaster(config).fit(two_ticker_bars, progress=False)
    loaded = FuzzyLSTMForecaster.load(model.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(
        loaded.predict(two_ticker_bars), model.predict(two_ticker_bars), check_exact=True
    )
    assert type(loaded.clusterer_) is type(model.clusterer_)
    if clusterer == "learned":  # the fine-tune trained the gate: its residual left zero
        assert np.abs(loaded.clusterer_.params_["w2"]).max() > 0
