"""bf16 or float32 training on the CPU: speed and accuracy of the same fit on real stocks.

    python benchmarks/compare_precision.py                     # 20 stocks (seed 0), K=3, 6 epochs
    python benchmarks/compare_precision.py --tickers 40 --epochs 10 --threads 2

Fits the full model (fuzzy c-means, K quantile experts, fine-tune, calibration) twice on the same
bars, once per `TrainConfig.precision`, and prints the wall time of each fit, its training
windows/s (epochs x training windows / seconds of the whole fit, so a lower bound) and its pinball loss,
coverage and Winkler score on the validation and test blocks. It is why `precision="auto"` means
float32 on the CPU: CPU autocast leaves the LSTM (the bulk of the work) in float32 and lowers only
the heads' matrix products, so bf16 gains little here; on CUDA the LSTM itself runs in bf16.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from forecaster.config import ExpertConfig, ForecasterConfig, TrainConfig
from forecaster.data import load_bars
from forecaster.model import FuzzyLSTMForecaster

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us-stocks-2000-2017.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default=str(DATA))
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bars = load_bars(args.source)
    drawn = np.random.default_rng(0).choice(sorted(bars["ticker"].unique()), args.tickers, replace=False)
    bars = bars[bars["ticker"].isin(sorted(drawn))]
    print(
        f"{args.tickers} stocks (seed 0), {len(bars):,} bars; {args.epochs} epochs (patience off), batch "
        f"{args.batch}; torch {torch.__version__}, {args.threads} threads, {platform.machine()}"
    )
    print(
        f"{'precision':<10}{'fit s':>7}{'windows/s':>11}{'val pinball':>13}{'test pinball':>14}"
        f"{'test cov80':>12}{'test cov95':>12}{'test W80':>10}"
    )
    for precision in ("fp32", "bf16"):
        config = ForecasterConfig(
            expert=ExpertConfig(hidden_size=64),
            train=TrainConfig(
                epochs=args.epochs,
                patience=args.epochs,
                batch_size=args.batch,
                device="cpu",
                precision=precision,
            ),
        )
        started = time.perf_counter()
        model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
        seconds = time.perf_counter() - started
        m = model.metrics_
        epochs = len(model.history_["experts"]) + len(model.history_.get("fine_tune", []))
        print(
            f"{precision:<10}{seconds:>7.0f}{epochs * m['n_windows_train'] / seconds:>11,.0f}"
            f"{m['val_pinball'] * 1e4:>13.2f}{m['test_pinball'] * 1e4:>14.2f}"
            f"{m['test_coverage_80']:>12.1%}{m['test_coverage_95']:>12.1%}{m['test_winkler_80'] * 1e4:>10.1f}"
        )


if __name__ == "__main__":
    main()
