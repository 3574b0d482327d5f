"""Training loops: membership-weighted experts, then the joint fine-tune of the fused output.

Both loops share `_fit`: mini-batches drawn from tensors resident on the device, gradient
clipping, early stopping on validation loss with the best weights kept on the device, and
progress (`forecaster.runtime.progress`). On CUDA: bf16 autocast (no GradScaler: bf16 has float32's
range), fused Adam, and no host synchronisation inside an epoch.

Losses: the pinball loss over quantile levels and horizons for the quantile head (a CRPS
approximation), the squared error for the point head. Expert k's loss weighs every window by
w_ik (from u_ik^m); the fine-tune scores the fused output sum_k u_k y_k, which is what is served.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from contextvars import ContextVar

import torch
from torch import nn

from forecaster.config import TrainConfig
from forecaster.experts.losses import window_loss
from forecaster.experts.network import ExpertEnsemble, fuse
from forecaster.runtime.progress import Progress

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


def _fit(
    module: nn.Module,
    tracks: list[nn.Module],
    loss_fn: Callable[[nn.Module, Tensors], torch.Tensor],
    train: Tensors,
    val: Tensors,
    config: TrainConfig,
    *,
    epochs: int,
    lr: float,
    names: list[str],
    desc: str,
    progress: bool | None,
) -> list[dict[str, float]]:
    """Minimise the sum of per-track losses; early-stop and restore each track on its own.

    `loss_fn(module, batch) -> [n_tracks]` losses. A track is the part of the module whose
    weights one validation loss judges (one expert's block, or the whole ensemble when fine-tuning).
    """
    device = train[0].device
    cuda = device.type == "cuda"
    bf16 = cuda if config.precision == "auto" else config.precision == "bf16"
    optimizer = torch.optim.Adam(
        module.parameters(), lr=lr, weight_decay=config.weight_decay, **({"fused": True} if cuda else {})
    )
    # Linear warm-up: large batches (thousands of windows on a GPU) need it to start stably.
    warmup = max(config.warmup_steps, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    n_train, batch = len(train[0]), config.batch_size
    best = [float("inf")] * len(tracks)
    best_state = [_snapshot(t) for t in tracks]
    stale = [0] * len(tracks)
    history: list[dict[str, float]] = []
    steps = (n_train + batch - 1) // batch
    bar = Progress(desc, total=epochs * steps, unit="batch", items_per_step=batch, enabled=progress)
    for epoch in range(1, epochs + 1):
        module.train()
        active = torch.tensor([s < config.patience for s in stale], device=device, dtype=torch.float32)
        order = torch.randperm(n_train, generator=generator).to(device)
        total = torch.zeros(len(tracks), device=device)
        for start in range(0, n_train, batch):
            idx = order[start : start + batch]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                losses = loss_fn(module, tuple(t[idx] for t in train))  # [n_tracks]
            optimizer.zero_grad(set_to_none=True)
            (losses * active).sum().backward()
            nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            total += losses.detach() * len(idx)
            seen = start + len(idx)
            bar.advance(functools.partial(_running, epoch, total, active, seen))
        val_losses = _evaluate(module, loss_fn, val, batch, bf16)
        row: dict[str, float] = {"epoch": epoch}
        train_losses = (total / n_train).tolist()  # one host sync per epoch
        for k, name in enumerate(names):
            row[f"{name}/train_loss"] = train_losses[k]
            row[f"{name}/val_loss"] = val_losses[k]
            if stale[k] >= config.patience:
                continue  # this track already stopped; its weights are frozen by `active`
            if val_losses[k] < best[k] - 1e-7:
                best[k], stale[k] = val_losses[k], 0
                best_state[k] = _snapshot(tracks[k])
            else:
                stale[k] += 1
        history.append(row)
        if (listener := _epoch_listener.get()) is not None:
            listener(desc, row)
        bar.note(
            f"epoch {epoch}: val {sum(val_losses) / len(val_losses):.4f}, {sum(s < config.patience for s in stale)} active"
        )
        if all(s >= config.patience for s in stale):
            log.info("%s: early stop after epoch %d", desc, epoch)
            break
    bar.close()
    for track, state in zip(tracks, best_state, strict=True):
        track.load_state_dict(state)
    module.eval()
    return history


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


def _weighted_expert_losses(ensemble: nn.Module, batch: Tensors, gather: Gather, levels) -> torch.Tensor:
    end, y, w = batch  # [B], [B, H], [B, K]
    per_window = window_loss(ensemble(gather(end)).float(), y[:, None, :], levels)  # [B, K]
    # Weights have mean 1 over the whole training set, so this is an unbiased batch estimate.
    return (w * per_window).mean(dim=0)  # [K]


def _fused_loss(ensemble: nn.Module, batch: Tensors, gather: Gather, levels) -> torch.Tensor:
    end, y, u = batch  # [B], [B, H], [B, K]
    return window_loss(fuse(u, ensemble(gather(end)).float()), y, levels).mean().reshape(1)


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


def train_experts(
    ensemble: ExpertEnsemble,
    train: Tensors,
    val: Tensors,
    config: TrainConfig,
    gather: Gather,
    levels: torch.Tensor | None = None,
    progress: bool | None = None,
) -> list[dict[str, float]]:
    """Expert k minimises its loss over all windows weighted by w_ik (from u_ik^m).

    `train`, `val`: (window end rows [N], targets [N, H], weights [N, K]) tensors on the device;
    `gather` turns end rows into windows; `levels` [Q] for the quantile head, None for the MSE head.
    """
    names = [f"expert_{k}" for k in range(ensemble.n_experts)]
    return _fit(
        ensemble,
        [_ExpertBlock(ensemble, k) for k in range(ensemble.n_experts)],
        functools.partial(_weighted_expert_losses, gather=gather, levels=levels),
        train,
        val,
        config,
        epochs=config.epochs,
        lr=config.lr,
        names=names,
        desc="experts",
        progress=progress,
    )


def fine_tune(
    ensemble: ExpertEnsemble,
    train: Tensors,
    val: Tensors,
    config: TrainConfig,
    gather: Gather,
    levels: torch.Tensor | None = None,
    progress: bool | None = None,
) -> list[dict[str, float]]:
    """Joint fine-tune of all experts on the loss of the fused forecast: (end rows, targets, fusion weights)."""
    return _fit(
        ensemble,
        [ensemble],
        functools.partial(_fused_loss, gather=gather, levels=levels),
        train,
        val,
        config,
        epochs=config.fine_tune_epochs,
        lr=config.fine_tune_lr,
        names=["fused"],
        desc="fine-tune",
        progress=progress,
    )
