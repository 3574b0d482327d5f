"""Distributed training of the global model: Ray Train's TorchTrainer, DDP over N workers.

Every worker runs the ordinary `FuzzyLSTMForecaster.fit` on the same bars, so the scaler, the
fuzzy c-means centers, the memberships and the validation and calibration blocks are the same
everywhere (all seeded). Two things differ (`DistributedForecaster`): each worker trains on
its share of the training windows (every N-th one, the same count on every worker), and the
ensemble is wrapped in `DistributedDataParallel`, which averages the gradients over the
workers after every backward pass. One optimiser step therefore sees N x `batch_size`
windows. Validation losses are computed on the whole validation block by every worker, so
early stopping decides the same everywhere. Worker 0 saves the model directory as the run's
checkpoint; `fit_distributed` returns it loaded, ready for `save` and the registry flow.

CPUs train with the `gloo` backend; with `use_gpu` each worker takes one GPU and `nccl`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from forecaster.config import ForecasterConfig
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.engine import NODE_LOSS_RETRIES, start_ray

log = logging.getLogger(__name__)


class _EnsembleDDP(DistributedDataParallel):
    """DDP whose attributes fall back to the wrapped ensemble's (`n_experts`, `lstm`, ...).

    The training loops address an expert's block of weights through the module they train;
    this lets them train the wrapper (forward and backward through DDP) without changes.
    """

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


class DistributedForecaster(FuzzyLSTMForecaster):
    """`FuzzyLSTMForecaster` that trains as one worker of a torch.distributed process group."""

    def _train_share(self, n_windows: int):
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        per_worker = n_windows // world  # equal counts: every worker takes the same number of steps
        if per_worker == 0:
            raise ValueError(f"{n_windows} training windows cannot be shared by {world} workers")
        return np.arange(rank, per_worker * world, world)

    def _train_module(self, experts):
        device = next(experts.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return _EnsembleDDP(experts, device_ids=ids, broadcast_buffers=False)


def train_worker(loop_config: dict) -> None:
    """Ray Train's per-worker loop: fit with DDP, worker 0 reports the model directory."""
    import ray
    import ray.train
    from ray.train import Checkpoint

    bars = loop_config["bars"]
    bars = ray.get(bars) if isinstance(bars, ray.ObjectRef) else bars
    config = ForecasterConfig.from_dict(loop_config["config"])
    gpu = torch.cuda.is_available() and loop_config.get("use_gpu")
    config = config.with_(train={"device": str(ray.train.torch.get_device()) if gpu else "cpu"})
    model = DistributedForecaster(config).fit(bars, progress=False)
    metrics = {k: float(v) for k, v in model.metrics_.items() if isinstance(v, int | float)}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            model.save(Path(tmp) / "model")
            checkpoint = Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def fit_distributed(
    bars: pd.DataFrame,
    config: ForecasterConfig,
    *,
    workers: int = 2,
    use_gpu: bool = False,
    storage: Path | str,
    name: str = "forecaster-train",
) -> FuzzyLSTMForecaster:
    """Fit on `workers` Ray Train workers with DDP; the fitted model, loaded on the CPU."""
    ray = start_ray()
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"bars": ray.put(bars), "config": config.to_dict(), "use_gpu": use_gpu},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        # A lost worker stops the DDP group; Ray Train restarts the whole group (the fit is seeded
        # and keeps no mid-run checkpoint, so it starts again from the first epoch).
        run_config=RunConfig(
            name=name,
            storage_path=str(Path(storage).resolve()),
            failure_config=FailureConfig(max_failures=NODE_LOSS_RETRIES),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    with result.checkpoint.as_directory() as directory, tempfile.TemporaryDirectory() as tmp:
        # Load from a copy: the checkpoint folder may be a view that goes away with the context.
        local = shutil.copytree(Path(directory) / "model", Path(tmp) / "model")
        model = FuzzyLSTMForecaster.load(local)
    log.info("trained on %d %s workers (DDP): %s", workers, "GPU" if use_gpu else "CPU", result.metrics)
    return model
