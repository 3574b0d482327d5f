"""Training throughput and inference latency of the expert ensemble: one wide network vs K LSTMs.

    python benchmarks/bench_model.py                          # CPU, 2 threads; CUDA too when present
    python benchmarks/bench_model.py --threads 2 --experts 3 4 --batches 256 1024 4096
    python benchmarks/bench_model.py --source ../shared/data/us-stocks-2000-2017.parquet --tickers 20

Prints, per K and batch size: training windows/s of `forecaster.experts.ExpertEnsemble` (what
the model trains and serves) in its two layouts, one block-diagonal wide LSTM call ("wide", the
GPU's) and K calls on each expert's slice of the same weights ("split", the CPU's), and of K
separate nn.LSTM modules (the wave-1 design), all with the quantile head, the pinball loss and
Adam on the same windows; then the single-window latency p50/p99 of the model's
`predict_windows` on one thread in both layouts, and per window in a batch of 256. Figures
depend on the machine: rerun rather than quote.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from torch import nn

from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.data import load_bars
from forecaster.experts.devices import device_name
from forecaster.experts.losses import pinball
from forecaster.experts.network import ExpertEnsemble, monotone_quantiles
from forecaster.features.scaler import FeatureScaler
from forecaster.features.splits import split_windows
from forecaster.features.windows import make_windows, standardized_targets
from forecaster.model import FuzzyLSTMForecaster


class SeparateExperts(nn.Module):
    """The wave-1 layout: K nn.LSTM modules and K heads, called one after another."""

    def __init__(self, n_experts: int, n_features: int, horizon: int, n_outputs: int, hidden_size: int):
        super().__init__()
        self.lstms = nn.ModuleList(
            nn.LSTM(n_features, hidden_size, batch_first=True) for _ in range(n_experts)
        )
        self.heads = nn.ModuleList(nn.Linear(hidden_size, horizon * n_outputs) for _ in range(n_experts))
        self.horizon, self.n_outputs, self.median = horizon, n_outputs, n_outputs // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [head(lstm(x)[0][:, -1]) for lstm, head in zip(self.lstms, self.heads, strict=True)]
        raw = torch.stack(outs, dim=1).reshape(len(x), len(outs), self.horizon, self.n_outputs)
        return monotone_quantiles(raw, self.median)


def percentiles(samples_s: list[float]) -> str:
    ms = np.array(samples_s) * 1e3
    return f"p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms"


def windows_per_second(module, features, ends, targets, levels, batch: int, device, seconds: float) -> float:
    """Forward + pinball loss + backward + Adam step on random batches for about `seconds`."""
    module = module.to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    offsets = torch.arange(1 - 30, 1, device=device)
    generator = torch.Generator().manual_seed(0)
    cuda = device.type == "cuda"

    def step():
        idx = torch.randint(len(ends), (batch,), generator=generator).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            out = module(features[ends[idx][:, None] + offsets]).float()  # [B, K, H, Q]
        loss = pinball(out, targets[idx][:, None, :], levels).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator, cuDNN plans
        step()
    if cuda:
        torch.cuda.synchronize()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    if cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def lstm_floor_us(n_features: int, hidden: int, repeats: int) -> float:
    """Microseconds of one batch-1, 30-step LSTM call of one expert: the floor of a forecast per expert."""
    lstm = nn.LSTM(n_features, hidden, batch_first=True).eval()
    x, h0 = torch.randn(1, 30, n_features), torch.zeros(1, 1, hidden)
    call = lambda: torch.lstm(x, (h0, h0), lstm._flat_weights, True, 1, 0.0, False, False, True)  # noqa: E731
    with torch.inference_mode():
        for _ in range(50):
            call()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
    return (time.perf_counter() - start) / repeats * 1e6


def lstm_share(module, features, ends, targets, levels, batch: int, steps: int = 10) -> float:
    """Share of a training step's CPU time spent in the LSTM kernels (torch.profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile

    module.train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    offsets = torch.arange(1 - 30, 1)
    idx = torch.arange(batch) % len(ends)

    def step():
        loss = pinball(
            module(features[ends[idx][:, None] + offsets]), targets[idx][:, None, :], levels
        ).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if "rnn" in e.key or "lstm" in e.key) / total


def bench_inference(model: FuzzyLSTMForecaster, windows, repeats: int) -> tuple[list[float], list[float]]:
    one, batch = windows.subset(np.arange(1)), windows.subset(np.arange(256))
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
    parser.add_argument(
        "--source", default="sample", help="bars: sample, or a CSV/Parquet file (the universe)"
    )
    parser.add_argument(
        "--tickers", type=int, default=0, help="use the first N tickers of the source (0: all)"
    )
    parser.add_argument("--experts", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for training")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed training per configuration")
    parser.add_argument("--repeats", type=int, default=2000, help="single-window predictions timed")
    args = parser.parse_args()

    bars = load_bars(args.source)
    if args.tickers:
        bars = bars[bars["ticker"].isin(sorted(bars["ticker"].unique())[: args.tickers])]
    config = ForecasterConfig(
        window=WindowConfig(window=30),
        expert=ExpertConfig(hidden_size=args.hidden),
        train=TrainConfig(epochs=1, fine_tune_epochs=0, device="cpu"),
    )
    levels_list = config.expert.levels
    splits = split_windows(make_windows(bars, config.window), config.window)
    train = splits["train"]
    scaler = FeatureScaler().fit(train)
    print(
        f"{len(train):,} training windows of {bars['ticker'].nunique()} tickers; hidden {args.hidden}, "
        f"{len(levels_list)} quantiles x H {config.window.horizon}; torch {torch.__version__}, "
        f"{args.threads} CPU thread(s), {platform.processor() or platform.machine()}"
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        torch.set_num_threads(args.threads)
        features = torch.as_tensor(scaler.transform_x(train.features), device=device)
        ends = torch.as_tensor(train.end, device=device)
        targets = torch.as_tensor(standardized_targets(train)[0].astype(np.float32), device=device)
        levels = torch.tensor(levels_list, device=device)
        batches = args.batches if device.type == "cpu" else sorted({*args.batches, 16384, 65536})
        for k in args.experts:
            for batch in batches:
                torch.manual_seed(0)
                n_features, h, q = train.features.shape[1], config.window.horizon, len(levels_list)
                modules = {"separate": SeparateExperts(k, n_features, h, q, args.hidden)}
                for layout in ("wide", "split"):
                    modules[layout] = ExpertEnsemble(
                        k, n_features, h, n_outputs=q, median_index=q // 2, hidden_size=args.hidden
                    )
                    modules[layout].layout = layout
                rates = {
                    name: windows_per_second(m, features, ends, targets, levels, batch, device, args.seconds)
                    for name, m in modules.items()
                }
                print(
                    f"training [{device_name(device)}] K={k} batch {batch:>6}: "
                    + ", ".join(f"{name} {rate:>9,.0f}" for name, rate in rates.items())
                    + " windows/s"
                )
        if device.type == "cpu":
            share = lstm_share(modules["split"], features, ends, targets, levels, args.batches[0])
            print(
                f"training [cpu] K={k} batch {args.batches[0]}, split: {share:.0%} of a step in LSTM kernels"
            )

    torch.set_num_threads(1)
    model = FuzzyLSTMForecaster(
        ForecasterConfig(
            cluster=ClusterConfig(n_clusters=args.experts[-1]),
            expert=ExpertConfig(hidden_size=args.hidden),
            train=TrainConfig(epochs=1, fine_tune_epochs=0, device="cpu"),
        )
    ).fit(bars, progress=False)
    for layout in ("wide", "split"):
        model.experts_.layout = layout
        single, batched = bench_inference(
            model, splits["test"] if len(splits["test"]) else splits["val"], args.repeats
        )
        where = f"inference [cpu, 1 thread, {layout}] K={args.experts[-1]}"
        print(f"{where}: single window {percentiles(single)}")
        print(f"{where}: batch of 256 {percentiles(batched)} per window")
    floor = lstm_floor_us(train.features.shape[1], args.hidden, args.repeats)
    print(
        f"inference [cpu, 1 thread] one expert's batch-1 LSTM call (h={args.hidden}, 30 steps): {floor:.0f} us"
    )


if __name__ == "__main__":
    main()
