"""Training throughput and inference latency of the fuzzy LSTM ensemble.

    python benchmarks/bench_model.py                 # CPU, 1 thread, and CUDA when present
    python benchmarks/bench_model.py --threads 2 --experts 4 --hidden 64

Prints: training windows/s (experts' epoch over real sample windows), single-window latency
p50/p99 of `predict_windows` (memberships + experts + fusion + intervals), and the latency
per window in a batch of 256. Figures depend on the machine: rerun rather than quote.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    TrainConfig,
    WindowConfig,
)
from forecaster.data import load_sample
from forecaster.experts import ExpertEnsemble
from forecaster.gating import membership_weights
from forecaster.model import FuzzyLSTMForecaster
from forecaster.training import device_name, train_experts
from forecaster.windows import make_windows, split_windows


def percentiles(samples_s: list[float]) -> str:
    ms = np.array(samples_s) * 1e3
    return f"p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms"


def bench_training(model: FuzzyLSTMForecaster, train, val, device: torch.device, epochs: int) -> float:
    """Windows per second through one expert epoch (forward + backward of all K experts)."""
    cfg = model.config
    ensemble = ExpertEnsemble(
        model.clusterer_.n_clusters_,
        train.x.shape[-1],
        cfg.window.horizon,
        hidden_size=cfg.expert.hidden_size,
    ).to(device)

    def tensors(ws):
        u = model.clusterer_.predict(model._descriptors(ws))
        arrays = (
            model.scaler_.transform_x(ws.x),
            model.scaler_.transform_y(ws.y),
            membership_weights(u, 2.0),
        )
        return tuple(torch.as_tensor(a, device=device) for a in arrays)

    train_t, val_t = tensors(train), tensors(val)
    config = TrainConfig(epochs=1, patience=10**6, device=str(device))
    train_experts(ensemble, train_t, val_t, config, progress=False)  # warm-up (cuDNN autotune, allocator)
    config.epochs = epochs
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_experts(ensemble, train_t, val_t, config, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * (len(train) + len(val)) / (time.perf_counter() - start)


def bench_inference(model: FuzzyLSTMForecaster, windows, repeats: int) -> tuple[list[float], list[float]]:
    one = windows.subset(np.arange(1))
    batch = windows.subset(np.arange(256))
    for _ in range(20):
        model.predict_windows(one)
    single = []
    for i in range(repeats):
        w = windows.subset(np.array([i % len(windows)]))
        start = time.perf_counter()
        model.predict_windows(w)
        single.append(time.perf_counter() - start)
    batched = []
    for _ in range(max(repeats // 20, 10)):
        start = time.perf_counter()
        model.predict_windows(batch)
        batched.append((time.perf_counter() - start) / 256)
    return single, batched


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs")
    parser.add_argument("--repeats", type=int, default=2000, help="single-window predictions timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    bars = load_sample()
    config = ForecasterConfig(
        window=WindowConfig(window=args.window),
        cluster=ClusterConfig(n_clusters=args.experts),
        expert=ExpertConfig(hidden_size=args.hidden),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
    splits = split_windows(make_windows(bars, config.window), config.window)
    print(
        f"{args.experts} experts, hidden {args.hidden}, window {args.window}, {len(splits['train'])} training "
        f"windows; torch {torch.__version__}, {args.threads} CPU thread(s), {platform.processor() or platform.machine()}"
    )

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        rate = bench_training(model, splits["train"], splits["val"], device, args.epochs)
        print(f"training   [{device_name(device)}]: {rate:,.0f} windows/s")
    single, batched = bench_inference(model, splits["test"], args.repeats)
    print(f"inference  [cpu]: single window {percentiles(single)}")
    print(f"inference  [cpu]: batch of 256 {percentiles(batched)} per window")


if __name__ == "__main__":
    main()
