"""Training loops: membership-weighted experts, then an optional joint fine-tune of the fused output.

Both loops share `_fit`: mini-batches drawn from tensors resident on the device, gradient
clipping, AMP on CUDA, early stopping on validation loss with the best weights restored, and
a progress bar on a terminal (tqdm stays quiet when output is not a TTY).
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from forecaster.config import TrainConfig
from forecaster.experts import ExpertEnsemble, fuse

log = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, ...]


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when present, else Apple MPS when it works, else CPU; or exactly what was asked."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


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
    weights one validation loss judges (one expert, or the whole ensemble when fine-tuning).
    """
    device = train[0].device
    use_amp = device.type == "cuda"
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    n_train, batch = len(train[0]), config.batch_size
    best = [float("inf")] * len(tracks)
    best_state = [copy.deepcopy(t.state_dict()) for t in tracks]
    stale = [0] * len(tracks)
    history: list[dict[str, float]] = []
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", disable=not show, leave=False)
    for epoch in bar:
        module.train()
        active = torch.tensor([s < config.patience for s in stale], device=device, dtype=torch.float32)
        order = torch.randperm(n_train, generator=generator).to(device)
        total = torch.zeros(len(tracks), device=device)
        for start in range(0, n_train, batch):
            idx = order[start : start + batch]
            with torch.autocast(device_type=device.type, enabled=use_amp):
                losses = loss_fn(module, tuple(t[idx] for t in train))  # [n_tracks]
            optimizer.zero_grad(set_to_none=True)
            scaler.scale((losses * active).sum()).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total += losses.detach() * len(idx)
        val_losses = _evaluate(module, loss_fn, val, batch)
        row: dict[str, float] = {"epoch": epoch}
        for k, name in enumerate(names):
            row[f"{name}/train_loss"] = float(total[k] / n_train)
            row[f"{name}/val_loss"] = val_losses[k]
            if stale[k] >= config.patience:
                continue  # this track already stopped; its weights are frozen by `active`
            if val_losses[k] < best[k] - 1e-7:
                best[k], stale[k] = val_losses[k], 0
                best_state[k] = copy.deepcopy(tracks[k].state_dict())
            else:
                stale[k] += 1
        history.append(row)
        bar.set_postfix(val=f"{np.mean(val_losses):.4f}", active=int(sum(s < config.patience for s in stale)))
        if all(s >= config.patience for s in stale):
            log.info("%s: early stop after epoch %d", desc, epoch)
            break
    for track, state in zip(tracks, best_state, strict=True):
        track.load_state_dict(state)
    module.eval()
    return history


@torch.no_grad()
def _evaluate(module: nn.Module, loss_fn, data: Tensors, batch: int) -> list[float]:
    module.eval()
    n = len(data[0])
    total = None
    for start in range(0, n, batch):
        part = tuple(t[start : start + batch] for t in data)
        losses = loss_fn(module, part) * len(part[0])
        total = losses if total is None else total + losses
    return [float(v) for v in (total / n)]


def _weighted_expert_losses(ensemble: nn.Module, batch: Tensors) -> torch.Tensor:
    x, y, w = batch  # [B, L, F], [B, H], [B, K]
    per_window = ((ensemble(x).float() - y[:, None, :]) ** 2).mean(dim=-1)  # [B, K]
    # Weights have mean 1 over the whole training set, so this is an unbiased batch estimate.
    return (w * per_window).mean(dim=0)  # [K]


def _fused_loss(ensemble: nn.Module, batch: Tensors) -> torch.Tensor:
    x, y, u = batch
    return ((fuse(u, ensemble(x).float()) - y) ** 2).mean().reshape(1)


def train_experts(
    ensemble: ExpertEnsemble,
    train: Tensors,
    val: Tensors,
    config: TrainConfig,
    progress: bool | None = None,
) -> list[dict[str, float]]:
    """Expert k minimises the MSE of all windows weighted by w_ik (from u_ik^m). (x, y, w) tensors."""
    names = [f"expert_{k}" for k in range(len(ensemble.experts))]
    return _fit(
        ensemble,
        list(ensemble.experts),
        _weighted_expert_losses,
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
    progress: bool | None = None,
) -> list[dict[str, float]]:
    """Joint fine-tune of all experts on the MSE of the fused forecast. (x, y, u) tensors."""
    return _fit(
        ensemble,
        [ensemble],
        _fused_loss,
        train,
        val,
        config,
        epochs=config.fine_tune_epochs,
        lr=config.fine_tune_lr,
        names=["fused"],
        desc="fine-tune",
        progress=progress,
    )
