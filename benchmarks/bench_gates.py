"""Does the gate matter? FCM or learned memberships, u^m or competitive training, on the sample.

    python benchmarks/bench_gates.py                      # 4 configurations, about 8 minutes on 2 cores
    python benchmarks/bench_gates.py --epochs 10 --fine-tune-epochs 5 --configs learned+competitive

Fits the bundled sample (S&P 500 + NASDAQ, the quickstart's splits) under each configuration
`clusterer+objective` and prints, per configuration:
- val / test pinball of the calibrated forecast (log returns, x1e4, the README's unit);
- how far the gate moves the forecast: mean |fused - equal-weight| of the raw q0.05 and q0.95 on
  the test windows, in units of the origin's volatility (sigma);
- the oracle gap: how much lower the raw test pinball (sigma units) would be with the best
  expert of every window in hindsight than with equal weights, and the share of that gap the
  gate's fused forecast captures, (equal - fused) / (equal - oracle).
Figures depend on the machine and the epochs: rerun rather than quote.
"""

from __future__ import annotations

import argparse
import logging
import time

from forecaster.config import ForecasterConfig
from forecaster.data import load_sample
from forecaster.evaluation.gate import gate_figures
from forecaster.features.splits import split_windows
from forecaster.features.windows import make_windows
from forecaster.model import FuzzyLSTMForecaster

CONFIGS = ("fcm+membership", "learned+membership", "fcm+competitive", "learned+competitive")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="clusterer+objective pairs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=None, help="competitive_temperature")
    parser.add_argument("--gate-lr", type=float, default=None, help="the learned gate's learning rate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bars = load_sample()
    base = ForecasterConfig().with_(
        cluster={"n_clusters": args.clusters},
        train={
            "epochs": args.epochs,
            "fine_tune_epochs": args.fine_tune_epochs,
            "device": "cpu",
            "seed": args.seed,
        },
    )
    tuned = {"competitive_temperature": args.temperature, "gate_lr": args.gate_lr}
    base = base.with_(train={k: v for k, v in tuned.items() if v is not None})
    test = split_windows(make_windows(bars, base.window), base.window)["test"]
    print(
        f"sample: {bars.ticker.nunique()} tickers, {len(test)} test windows; epochs {args.epochs} + {args.fine_tune_epochs}"
    )
    header = f"{'config':22} {'val pb':>7} {'test pb':>7} {'|d q05|':>7} {'|d q95|':>7} {'oracle%':>7} {'capt%':>6} {'spread':>6} {'s':>5}"
    rows = []
    for name in args.configs:
        clusterer, objective = name.split("+")
        print(f"fitting {name} ...", flush=True)
        start = time.perf_counter()
        config = base.with_(cluster={"clusterer": clusterer}, train={"objective": objective})
        model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
        figures = gate_figures(model, test)
        m, seconds = model.metrics_, time.perf_counter() - start
        rows.append(
            f"{name:22} {1e4 * m['val_pinball']:7.2f} {1e4 * m['test_pinball']:7.2f} "
            f"{figures['shift_q05']:7.3f} {figures['shift_q95']:7.3f} {figures['oracle_gap_pct']:7.2f} "
            f"{figures['captured_pct']:6.1f} {figures['expert_spread']:6.3f} {seconds:5.0f}"
        )
        print(f"  {rows[-1]}", flush=True)
    print("\n" + header)
    print("\n".join(rows))
    print(
        "pb: pinball x1e4 of cumulative log returns (calibrated); |d q05|, |d q95|: mean |fused - equal-weight|\n"
        "raw quantile on test, sigma units; oracle%: best expert per window in hindsight vs equal weights,\n"
        "raw test pinball; capt%: share of that gap the gate's fusion captures; spread: mean |expert median -\n"
        "equal-weight median|, sigma units (how much the experts disagree)."
    )


if __name__ == "__main__":
    main()
