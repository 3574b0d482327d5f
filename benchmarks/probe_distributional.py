"""Probe: how good are the distributional baselines on real stocks? The bar the quantile experts must beat.

    python benchmarks/probe_distributional.py                       # 20 random tickers, seed 0
    python benchmarks/probe_distributional.py --tickers 50 --seed 1 --data ../shared/data/us-stocks-2000-2017.parquet

Draws N tickers (seeded) from the US-stocks file, fits every baseline on the bars up to
--train-end, forecasts 1..5-day cumulative log-return quantiles from every origin in
[--test-start, --test-end] (state filtered through the full history up to each origin, one fit,
no refits), and prints per baseline and horizon: mean pinball loss over the default quantile
levels x1e4, and the coverage of the central 80%, 90% and 95% intervals. Tickers with a print
outside the day's [low, high] are left out and named (the file keeps one such bad print on purpose).
Survivorship: the file holds only companies still listed in late 2017.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import pandas as pd

from forecaster.config import DEFAULT_LEVELS, WindowConfig
from forecaster.evaluation.baselines import BASELINES as REGISTERED
from forecaster.evaluation.baselines import (
    EwmaForecaster,
    GarchForecaster,
    GjrGarchForecaster,
    HarQuantileForecaster,
    HistoricalForecaster,
    NaiveForecaster,
    level_index,
)
from forecaster.features.windows import make_windows
from forecaster.metrics import coverage, pinball_loss

BASELINES = {
    "garch": GarchForecaster,  # GARCH(1,1)-t
    "gjr_garch": GjrGarchForecaster,  # GJR-GARCH(1,1) skewed t, simulated h-day paths
    "har_qr": HarQuantileForecaster,  # HAR quantile regression on RV1/5/22 levels
    "har_qr_log": partial(HarQuantileForecaster, log_vol=True),  # ... on log RV
    "ewma": EwmaForecaster,  # EWMA 0.94, empirical standardized quantiles
    "historical": HistoricalForecaster,  # last 500 h-day returns
    "naive": NaiveForecaster,  # unconditional training quantiles of h-day returns
    **{name: REGISTERED[name] for name in ("garch+cqr", "gjr_garch+cqr", "har_qr+cqr", "ewma+cqr")},
}
LEVELS = DEFAULT_LEVELS  # 0.05 and 0.95 give the 90% interval


def load(path: str, n: int, seed: int) -> pd.DataFrame:
    bars = pd.read_parquet(path)
    bars["date"] = pd.to_datetime(bars["date"])
    bad = bars[(bars["adj_close"] > bars["high"] * 1.0001) | (bars["adj_close"] < bars["low"] * 0.9999)]
    if len(bad):
        print(f"left out (print outside [low, high]): {', '.join(sorted(bad['ticker'].unique()))}")
    tickers = sorted(set(bars["ticker"]) - set(bad["ticker"]))
    chosen = sorted(np.random.default_rng(seed).choice(tickers, size=min(n, len(tickers)), replace=False))
    return bars[bars["ticker"].isin(chosen)].sort_values(["ticker", "date"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="/work/shared/data/us-stocks-2000-2017.parquet")
    parser.add_argument("--tickers", type=int, default=20, help="how many random tickers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-end", default="2011-12-31")
    parser.add_argument("--test-start", default="2012-01-01")
    parser.add_argument("--test-end", default="2017-11-10")
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--models", default=",".join(BASELINES), help="comma-separated baselines")
    args = parser.parse_args()

    started = time.perf_counter()
    bars = load(args.data, args.tickers, args.seed)
    print(f"tickers ({bars['ticker'].nunique()}): {', '.join(bars['ticker'].unique())}")
    config = WindowConfig(window=30, horizon=args.horizon, features=("log_return",))
    train = bars[bars["date"] <= pd.Timestamp(args.train_end)]
    windows = make_windows(bars, config)
    lo, hi = (np.datetime64(pd.Timestamp(d).date()) for d in (args.test_start, args.test_end))
    test = windows.subset((windows.origin >= lo) & (windows.origin <= hi))
    y = np.cumsum(test.y.astype(np.float64), axis=1)  # [N, H] actual cumulative log returns
    print(
        f"{len(test)} origins {test.origin.min()} .. {test.origin.max()}; load {time.perf_counter() - started:.1f}s"
    )

    shown = sorted({1, args.horizon})
    header = f"{'baseline':<11} {'h':>2} {'pinball x1e4':>13} {'cov80':>7} {'cov90':>7} {'cov95':>7} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        cls = BASELINES[name]
        t0 = time.perf_counter()
        model = cls(config, coverage=(0.8, 0.95), levels=LEVELS).fit(train)  # +cqr: calib block of train
        q = model.predict_windows(test, bars=bars).quantiles  # [N, H, Q]
        seconds = time.perf_counter() - t0
        for h in shown:
            qh = q[:, h - 1]
            cov = {
                c: coverage(
                    y[:, h - 1],
                    qh[:, level_index(LEVELS, (1 - c) / 2)],
                    qh[:, level_index(LEVELS, (1 + c) / 2)],
                )
                for c in (0.8, 0.9, 0.95)
            }
            print(
                f"{name:<11} {h:>2} {1e4 * pinball_loss(y[:, h - 1], qh, LEVELS):>13.2f} "
                f"{100 * cov[0.8]:>6.1f}% {100 * cov[0.9]:>6.1f}% {100 * cov[0.95]:>6.1f}% {seconds:>8.1f}"
            )
    print(f"total {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
