"""Training loops: membership-weighted experts, then the joint fine-tune of the fused output.

Both loops share `_fit`: mini-batches drawn from tensors resident on the device, gradient
clipping, early stopping on validation loss with the best weights kept on the device, and
progress (`forecaster.runtime.progress`). On CUDA: bf16 autocast (no GradScaler: bf16 has float32's
range), fused Adam, and no host synchronisation inside an epoch.

Losses: the head's per-window loss (`forecaster.experts.heads`: pinball over levels and horizons
for the quantile head, squared error for the point head). Expert k's loss weighs every window by
w_ik (from u_ik^m); the fine-tune scores the fused output sum_k u_k y_k, which is what is served.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple

import torch
from torch import nn

from forecaster.config import TrainConfig
from forecaster.experts.competition import competitive_reweigh
from forecaster.experts.gating import GatedEnsemble, gated_loss
from forecaster.experts.network import ExpertEnsemble, fuse
from forecaster.runtime.progress import Progress
from forecaster.runtime.threads import ensure_threads

log = logging.getLogger(__name__)


Tensors = tuple[torch.Tensor, ...]


# Called with (stage, row) after every epoch of every loop in this context (`on_epoch`).
_epoch_listener: ContextVar[Callable[[str, dict], None] | None] = ContextVar("epoch_listener", default=None)


@contextlib.contextmanager
def on_epoch(listener: Callable[[str, dict[str, float]], None]):
    """Call `listener(stage, row)` after every epoch trained inside this block.

    `stage` is "experts" or "fine-tune"; `row` is the epoch's row of `history_` (per-track
    train and validation losses). A hyperparameter search reports from here, so a scheduler
    such as ASHA can stop a weak trial after a few epochs.
    """
    token = _epoch_listener.set(listener)
    try:
        yield
    finally:
        _epoch_listener.reset(token)


class _Stage(NamedTuple):
    """One training loop: its name in the progress and the history, length, learning rate, tracks."""

    desc: str
    epochs: int
    lr: float
    names: list[str]


def _fit(
    module: nn.Module,
    tracks: list[nn.Module],
    loss_fn: Callable[[nn.Module, Tensors], torch.Tensor],
    train: Tensors,
    val: Tensors,
    config: TrainConfig,
    stage: _Stage,
    progress: bool | None,
    reweigh: Callable[[nn.Module, Tensors], Tensors] | None = None,
) -> list[dict[str, float]]:
    """Minimise the sum of per-track losses; early-stop and restore each track on its own.

    `loss_fn(module, batch) -> [n_tracks]` losses. A track is the part of the module whose
    weights one validation loss judges (one expert's block, or the whole ensemble when fine-tuning).
    `reweigh(module, train) -> train`, when given, renews the training tensors before every epoch
    (the competitive objective's responsibilities).
    """
    device = train[0].device
    if device.type == "cpu":
        ensure_threads()  # the host's core count is too many threads in a CPU-limited container
    bf16 = device.type == "cuda" if config.precision == "auto" else config.precision == "bf16"
    step = _Step(module, loss_fn, *_optimizer(module, config, stage.lr, device), bf16, config.grad_clip)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    stop = _EarlyStop(tracks, config.patience, stage)
    n_train, batch = len(train[0]), config.batch_size
    steps = (n_train + batch - 1) // batch
    bar = Progress(
        stage.desc, total=stage.epochs * steps, unit="batch", items_per_step=batch, enabled=progress
    )
    history: list[dict[str, float]] = []
    for epoch in range(1, stage.epochs + 1):
        train = train if reweigh is None else reweigh(module, train)
        module.train()
        active = stop.active(device)
        order = torch.randperm(n_train, generator=generator).to(device)
        total = step.epoch(train, order, active, batch, functools.partial(_advance, bar, epoch))
        val_losses = _evaluate(module, loss_fn, val, batch, bf16)
        history.append(_epoch_row(epoch, stage.names, (total / n_train).tolist(), val_losses))
        stop.update(val_losses)
        if (listener := _epoch_listener.get()) is not None:
            listener(stage.desc, history[-1])
        bar.note(f"epoch {epoch}: val {sum(val_losses) / len(val_losses):.4f}, {stop.n_active} active")
        if stop.n_active == 0:
            log.info("%s: early stop after epoch %d", stage.desc, epoch)
            break
    bar.close()
    stop.restore()
    module.eval()
    return history


def _optimizer(module: nn.Module, config: TrainConfig, lr: float, device: torch.device):
    """Adam (fused on CUDA) and its linear warm-up: large batches (thousands of windows) need it."""
    cuda = device.type == "cuda"
    # A module may give parts of itself their own learning rate (the learned gate's, `gating`).
    params = module.param_groups(lr) if hasattr(module, "param_groups") else module.parameters()
    optimizer = torch.optim.Adam(
        params, lr=lr, weight_decay=config.weight_decay, **({"fused": True} if cuda else {})
    )
    warmup = max(config.warmup_steps, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    return optimizer, schedule


class _Step(NamedTuple):
    """What one optimiser step needs; `epoch` runs them over the shuffled training rows."""

    module: nn.Module
    loss_fn: Callable[[nn.Module, Tensors], torch.Tensor]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    bf16: bool
    grad_clip: float

    def epoch(self, train: Tensors, order: torch.Tensor, active: torch.Tensor, batch: int, advance):
        """One pass over `train` in `order`; the sum of per-track losses over windows [n_tracks].

        Stopped tracks (`active` 0) get no gradient; nothing here waits for the device.
        """
        device = train[0].device
        total = torch.zeros(len(active), device=device)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=self.bf16):
                losses = self.loss_fn(self.module, tuple(t[idx] for t in train))  # [n_tracks]
            self.optimizer.zero_grad(set_to_none=True)
            (losses * active).sum().backward()
            nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
            self.optimizer.step()
            self.schedule.step()
            total += losses.detach() * len(idx)
            advance(total, active, start + len(idx))
        return total


# A track diverges when its validation loss stays this far above its best for this many epochs.
DIVERGENCE_RISE, DIVERGENCE_EPOCHS = 0.2, 2


class _EarlyStop:
    """Per-track early stopping: best validation loss, its weights (a copy on the device), patience.

    It also warns, once per track, when a track's validation loss has stayed more than 20% above
    its best for 2 epochs: a diverging expert (learning rate too high, a bad batch of data) that
    early stopping would otherwise hide behind its restored best weights.
    """

    def __init__(self, tracks: list[nn.Module], patience: int, stage: _Stage | None = None):
        self.tracks, self.patience, self.stage = tracks, patience, stage
        self.best = [float("inf")] * len(tracks)
        self.best_epoch = [0] * len(tracks)
        self.best_state = [_snapshot(t) for t in tracks]
        self.stale = [0] * len(tracks)
        self.rising = [0] * len(tracks)  # epochs in a row above (1 + DIVERGENCE_RISE) x best
        self.epoch = 0

    @property
    def n_active(self) -> int:
        return sum(s < self.patience for s in self.stale)

    def active(self, device: torch.device) -> torch.Tensor:
        """1 for every track still training, 0 for one stopped: [n_tracks]."""
        return torch.tensor([s < self.patience for s in self.stale], device=device, dtype=torch.float32)

    def update(self, val_losses: list[float]) -> None:
        self.epoch += 1
        for k, loss in enumerate(val_losses):
            if self.stale[k] >= self.patience:
                continue  # this track already stopped; its weights are frozen by `active`
            if loss < self.best[k] - 1e-7:
                self.best[k], self.best_epoch[k], self.stale[k] = loss, self.epoch, 0
                self.best_state[k] = _snapshot(self.tracks[k])
            else:
                self.stale[k] += 1
            self._watch_divergence(k, loss)

    def _watch_divergence(self, k: int, loss: float) -> None:
        diverging = loss != loss or loss > self.best[k] + DIVERGENCE_RISE * abs(self.best[k])
        self.rising[k] = self.rising[k] + 1 if diverging else 0
        if self.rising[k] == DIVERGENCE_EPOCHS:  # once per run of rising epochs
            stage, name = self.stage or _Stage("training", 0, 0.0, []), f"track {k}"
            name = stage.names[k] if k < len(stage.names) else name
            log.warning(
                "%s: %s's validation loss diverges: %.4g at epoch %d, %.0f%% above its best %.4g "
                "(epoch %d) for %d epochs (%d-%d); its best weights are kept. A lower learning "
                "rate (--lr) usually helps.",
                stage.desc, name, loss, self.epoch, 100 * (loss / self.best[k] - 1) if self.best[k] else float("inf"),
                self.best[k], self.best_epoch[k], DIVERGENCE_EPOCHS,
                self.epoch - DIVERGENCE_EPOCHS + 1, self.epoch,
            )  # fmt: skip

    def restore(self) -> None:
        for track, state in zip(self.tracks, self.best_state, strict=True):
            track.load_state_dict(state)


def _epoch_row(epoch: int, names: list[str], train_losses: list[float], val_losses: list[float]) -> dict:
    """The epoch's row of `history_`: per-track train and validation losses."""
    row: dict[str, float] = {"epoch": epoch}
    for k, name in enumerate(names):
        row[f"{name}/train_loss"] = train_losses[k]
        row[f"{name}/val_loss"] = val_losses[k]
    return row


def _advance(bar: Progress, epoch: int, total: torch.Tensor, active: torch.Tensor, seen: int) -> None:
    bar.advance(functools.partial(_running, epoch, total, active, seen))


def _running(epoch: int, total: torch.Tensor, active: torch.Tensor, seen: int) -> dict:
    """What the progress shows: the epoch and the running mean loss of the active tracks this epoch."""
    return {"epoch": epoch, "loss": float((total * active).sum() / (active.sum().clamp(min=1) * seen))}


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights that stays on their device (no trip to the host)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def _evaluate(module: nn.Module, loss_fn, data: Tensors, batch: int, bf16: bool) -> list[float]:
    module.eval()
    n = len(data[0])
    total = None
    for start in range(0, n, batch):
        part = tuple(t[start : start + batch] for t in data)
        with torch.autocast(device_type=part[0].device.type, dtype=torch.bfloat16, enabled=bf16):
            losses = loss_fn(module, part).float() * len(part[0])
        total = losses if total is None else total + losses
    return (total / n).tolist()


Gather = Callable[[torch.Tensor], torch.Tensor]  # window end rows [B] -> windows [B, L, F]
# A head's per-window loss (`Head.window_loss`): [..., H, Q] outputs, [..., H] targets -> [...].
WindowLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _weighted_expert_losses(
    ensemble: nn.Module, batch: Tensors, gather: Gather, loss: WindowLoss
) -> torch.Tensor:
    end, y, w = batch  # [B], [B, H], [B, K]
    per_window = loss(ensemble(gather(end)).float(), y[:, None, :])  # [B, K]
    # Weights have mean 1 over the whole training set, so this is an unbiased batch estimate.
    return (w * per_window).mean(dim=0)  # [K]


def _fused_loss(ensemble: nn.Module, batch: Tensors, gather: Gather, loss: WindowLoss) -> torch.Tensor:
    end, y, u = batch  # [B], [B, H], [B, K]
    return loss(fuse(u, ensemble(gather(end)).float()), y).mean().reshape(1)


class _ExpertBlock(nn.Module):
    """Expert k's slice of the ensemble as a track: its state is its rows of every weight.

    The experts share one wide LSTM, so "expert k's weights" are views into blocks of the shared
    tensors; early stopping saves and restores them without touching the other experts.
    """

    def __init__(self, ensemble: ExpertEnsemble, k: int):
        super().__init__()
        self.ensemble, self.k = [ensemble], k  # a list: not registered as a submodule

    def state_dict(self, *args, **kwargs):
        return {name: t.detach().clone() for name, t in self._views().items()}

    def load_state_dict(self, state, strict: bool = True):
        with torch.no_grad():
            for name, view in self._views().items():
                view.copy_(state[name])

    def _views(self) -> dict[str, torch.Tensor]:
        ens, k = self.ensemble[0], self.k
        h = ens.hidden_size
        units = slice(k * h, (k + 1) * h)
        views = {"head_weight": ens.head_weight[k], "head_bias": ens.head_bias[k]}
        for name, p in ens.lstm.named_parameters():
            gates = p.view(4, ens.n_experts * h, *p.shape[1:])[:, units]  # rows of expert k in i, f, g, o
            views[name] = (
                gates
                if name.startswith("bias") or name.endswith("_l0") and "ih" in name
                else gates[..., units]
            )
        return views


class TrainingData(NamedTuple):
    """What a loop reads, on the device: (window end rows [N], targets [N, H], weights [N, K]) of the
    training and validation windows, how end rows become windows, and the head's per-window loss;
    `prior`, the gate's fusion weights of the training windows [N, K], for the competitive objective."""

    train: Tensors
    val: Tensors
    gather: Gather
    loss: WindowLoss
    prior: torch.Tensor | None = None


def train_experts(
    ensemble: ExpertEnsemble, data: TrainingData, config: TrainConfig, progress=None
) -> list[dict]:
    """Expert k minimises its loss over all windows weighted by w_ik (from u_ik^m): weights are w [N, K].

    Under the competitive objective the training weights are the responsibilities, renewed every
    epoch from `data.prior` (`forecaster.experts.competition`); validation keeps the w of `data.val`,
    so early stopping judges every epoch on the same windows.
    """
    k = ensemble.n_experts
    stage = _Stage("experts", config.epochs, config.lr, [f"expert_{i}" for i in range(k)])
    tracks = [_ExpertBlock(ensemble, i) for i in range(k)]
    loss_fn = functools.partial(_weighted_expert_losses, gather=data.gather, loss=data.loss)
    reweigh = None
    if config.objective == "competitive":
        if data.prior is None:
            raise ValueError("the competitive objective needs the gate's prior weights: TrainingData.prior")
        reweigh = competitive_reweigh(
            data.prior, data.gather, data.loss, config.competitive_temperature,
            config.competitive_floor, config.batch_size,
        )  # fmt: skip
    return _fit(ensemble, tracks, loss_fn, data.train, data.val, config, stage, progress, reweigh)


def fine_tune(ensemble: ExpertEnsemble, data: TrainingData, config: TrainConfig, progress=None) -> list[dict]:
    """Joint fine-tune of all experts on the loss of the fused forecast: weights are fusion weights u [N, K]."""
    stage = _Stage("fine-tune", config.fine_tune_epochs, config.fine_tune_lr, ["fused"])
    loss_fn = functools.partial(_fused_loss, gather=data.gather, loss=data.loss)
    return _fit(ensemble, [ensemble], loss_fn, data.train, data.val, config, stage, progress)


def fine_tune_gated(experts: nn.Module, clusterer, data: TrainingData, config: TrainConfig, progress=None):
    """Joint fine-tune of the experts and a learned clusterer's gate network on the fused loss
    (`forecaster.experts.gating`); the third tensors of `data.train` / `data.val` are the windows'
    regime descriptors [N, D]. The clusterer takes the trained gate: its memberships change.

    `experts` may be the distributed trainer's wrapper of the ensemble: the gate's gradients are
    then each worker's own (worker 0's gate is the one saved).
    """
    gate = clusterer.network().to(data.train[0].device)
    module = GatedEnsemble(experts, gate, config.gate_lr)
    stage = _Stage("fine-tune", config.fine_tune_epochs, config.fine_tune_lr, ["fused"])
    loss_fn = functools.partial(gated_loss, gather=data.gather, loss=data.loss, config=config)
    history = _fit(module, [module], loss_fn, data.train, data.val, config, stage, progress)
    clusterer.set_network(gate.cpu())
    return history
