"""One training epoch over the 200-stock universe: wall time per stage and peak memory.

    python benchmarks/bench_universe.py --source ../shared/data/us-stocks-2000-2017.parquet
    python benchmarks/bench_universe.py --source ... --threads 2 --batch 1024 --experts 3

Loads the universe (a ticker that fails validation is quarantined and listed), cuts lazy
windows, fits the scaler and fuzzy c-means on the training windows, then trains the experts
for exactly one epoch (quantile head, pinball loss) and prints wall time per stage, training
windows/s and the process's peak RSS. Goal (issue 12): one epoch of ~800k windows in under
3 minutes on 2 cores with peak RSS under 3 GB.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig
from forecaster.data import load_bars
from forecaster.experts.heads import QuantileHead
from forecaster.experts.network import ExpertEnsemble
from forecaster.experts.training import TrainingData, train_experts
from forecaster.features.scaler import FeatureScaler
from forecaster.features.splits import split_windows
from forecaster.features.windows import make_windows, standardized_targets
from forecaster.regimes.descriptors import regime_descriptors
from forecaster.regimes.fcm import FuzzyCMeans
from forecaster.regimes.gates import membership_weights


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", required=True, help="the universe file (CSV/Parquet, long or per-ticker)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--experts", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ForecasterConfig(
        cluster=ClusterConfig(n_clusters=args.experts),
        expert=ExpertConfig(hidden_size=args.hidden),
        train=TrainConfig(epochs=1, batch_size=args.batch, fine_tune_epochs=0, device="cpu"),
    )
    stages: dict[str, float] = {}

    started = time.perf_counter()
    bars = load_bars(args.source)
    stages["load + validate"] = time.perf_counter() - started
    report = bars.attrs.get("quarantine")
    if report is not None and not report.empty:
        print(f"quarantined:\n{report}")

    started = time.perf_counter()
    splits = split_windows(make_windows(bars, config.window), config.window)
    train, val = splits["train"], splits["val"]
    scaler = FeatureScaler().fit(train)
    stages["windows + split + scaler"] = time.perf_counter() - started

    started = time.perf_counter()
    descriptors = lambda ws: regime_descriptors(ws.returns, config.cluster.descriptors)  # noqa: E731
    fcm = FuzzyCMeans(args.experts, random_state=0).fit(descriptors(train))
    u_train, u_val = fcm.predict(descriptors(train)), fcm.predict(descriptors(val))
    stages["fuzzy c-means + memberships"] = time.perf_counter() - started

    features = torch.as_tensor(scaler.transform_x(train.features))
    offsets = torch.arange(1 - config.window.window, 1)
    gather = lambda end: features[end[:, None] + offsets]  # noqa: E731
    tensors = lambda ws, u: tuple(  # noqa: E731
        torch.as_tensor(a)
        for a in (
            ws.end,
            standardized_targets(ws)[0].astype(np.float32),
            membership_weights(u, config.cluster.m),
        )
    )
    loss = QuantileHead(config.expert.levels).window_loss
    q = len(config.expert.levels)
    ensemble = ExpertEnsemble(
        args.experts, train.features.shape[1], config.window.horizon, n_outputs=q, median_index=q // 2,
        hidden_size=args.hidden,
    )  # fmt: skip
    started = time.perf_counter()
    data = TrainingData(tensors(train, u_train), tensors(val, u_val), gather, loss)
    train_experts(ensemble, data, config.train, None)
    stages["one epoch (train + validation)"] = time.perf_counter() - started

    print(
        f"{bars['ticker'].nunique()} tickers, {len(bars):,} bars; {len(train):,} training and {len(val):,} "
        f"validation windows; K={args.experts}, hidden {args.hidden}, batch {args.batch}, {args.threads} threads"
    )
    for name, seconds in stages.items():
        print(f"  {name:<32} {seconds:8.1f} s")
    epoch = stages["one epoch (train + validation)"]
    print(
        f"  training throughput             {len(train) / epoch:8,.0f} windows/s (validation pass included)"
    )
    print(f"  peak RSS                        {peak_rss_mb():8,.0f} MB")


if __name__ == "__main__":
    main()
