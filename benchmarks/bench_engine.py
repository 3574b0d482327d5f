"""Wall time of a universe walk-forward backtest on the local engine and on Ray, and their parity.

Usage:
    python benchmarks/bench_engine.py                          # 10 tickers, origins 2016-2017, yearly refits
    python benchmarks/bench_engine.py --tickers 200 --start 2012-01-01 --epochs 6
    RAY_ADDRESS=ray-head:6379 python benchmarks/bench_engine.py --engines ray

Each engine runs in a fresh process (same imports, same data), so the Ray figure includes
starting Ray here (or attaching to RAY_ADDRESS) and its workers' imports. Printed per engine:
wall time of `walk_forward` alone and with the Ray start, and the tasks' sizes (fit seconds per
fold and competitor, from the backtest's own fold table) with their sum (the work) and maximum
(the critical path a large enough cluster would be left with). Then whether the two engines'
forecasts are identical and Ray's overhead against local. Tickers: a seeded sample of the file's
(NUE, which has a bad print, left out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "us-stocks-2000-2017.parquet"
MODELS = "naive,drift,arima,garch,ewma,historical,equal_weight,fuzzy"


def run_engine(args, engine: str, out: Path) -> dict:
    """One backtest on `engine` in this process; forecasts to `out`, figures returned."""
    import numpy as np
    import pandas as pd

    from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
    from forecaster.data import load_bars
    from forecaster.evaluation.backtest import walk_forward
    from forecaster.runtime.engine import start_ray

    names = pd.read_parquet(args.source, columns=["ticker"])["ticker"].unique()
    names = sorted(set(names) - {"NUE"})
    tickers = sorted(np.random.default_rng(args.seed).choice(names, args.tickers, replace=False).tolist())
    bars = load_bars(str(args.source), tickers)
    config = ForecasterConfig(
        window=WindowConfig(window=30, horizon=5),
        cluster=ClusterConfig(n_clusters=3),
        expert=ExpertConfig(hidden_size=args.hidden),
        train=TrainConfig(
            epochs=args.epochs, patience=2, batch_size=512, lr=2e-3, fine_tune_epochs=1, device="cpu"
        ),
    )
    figures = {"engine": engine, "tickers": len(tickers), "bars": len(bars)}
    started = time.perf_counter()
    if engine == "ray":
        start_ray(None, args.num_cpus)
    figures["start_s"] = time.perf_counter() - started
    began = time.perf_counter()
    result = walk_forward(
        bars, config, start=args.start, end=args.end, refit_every=args.refit_every,
        models=args.models.split(","), engine=engine,
    )  # fmt: skip
    figures["backtest_s"] = time.perf_counter() - began
    figures["total_s"] = time.perf_counter() - started
    seconds = result.folds[[c for c in result.folds.columns if c.endswith("_seconds")]]
    figures["folds"] = len(result.folds)
    figures["tasks"] = int(seconds.notna().to_numpy().sum())
    figures["task_s_sum"] = float(np.nansum(seconds.to_numpy()))
    figures["task_s_max"] = float(np.nanmax(seconds.to_numpy()))
    figures["task_s_by_model"] = {
        c.removesuffix("_seconds"): round(float(seconds[c].mean()), 1) for c in seconds
    }
    figures["rows"] = len(result.forecasts)
    result.forecasts.to_parquet(out)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=DEFAULT.resolve())
    parser.add_argument("--tickers", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2016-01-01")
    parser.add_argument("--end", default="2017-12-31")
    parser.add_argument("--refit-every", type=int, default=250)  # yearly
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a Ray started here (default all)")
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # internal: one engine in this process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args, args.engine, args.out)))
        return

    import numpy as np
    import pandas as pd

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            out = Path(tmp) / f"{engine}.parquet"
            child = [arg for arg in sys.argv[1:]] + ["--engine", engine, "--out", str(out)]
            done = subprocess.run([sys.executable, __file__, *child], capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
            results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[engine]
            print(
                f"{engine:>5}: {r['tickers']} tickers, {r['bars']:,} bars, {r['folds']} folds, {r['tasks']} tasks, "
                f"{r['rows']:,} forecast rows | backtest {r['backtest_s']:.1f} s, start {r['start_s']:.1f} s, "
                f"total {r['total_s']:.1f} s | task seconds: sum {r['task_s_sum']:.1f}, max {r['task_s_max']:.1f}, "
                f"mean per fold {r['task_s_by_model']}"
            )
        if {"local", "ray"} <= set(results):
            local, ray = (pd.read_parquet(Path(tmp) / f"{e}.parquet") for e in ("local", "ray"))
            try:
                pd.testing.assert_frame_equal(ray, local)
                parity = "identical"
            except AssertionError as exc:
                a, b = (f.select_dtypes("number").to_numpy(float) for f in (ray, local))
                same_keys = ray.select_dtypes(exclude="number").equals(local.select_dtypes(exclude="number"))
                scale = np.nanmax(np.abs(b), axis=0)
                worst = (
                    np.nanmax(np.abs(a - b) / np.where(scale > 0, scale, 1)) if a.shape == b.shape else np.nan
                )
                parity = (
                    f"not bit-identical ({str(exc).splitlines()[0]}); keys and dates "
                    f"{'identical' if same_keys else 'DIFFERENT'}, largest difference {worst:.1e} of a column's scale"
                )
            lo, ra = results["local"], results["ray"]
            print(f"forecasts: {parity}")
            print(
                f"ray vs local: backtest {100 * (ra['backtest_s'] / lo['backtest_s'] - 1):+.0f}%, "
                f"with the Ray start {100 * (ra['total_s'] / lo['total_s'] - 1):+.0f}%"
            )


if __name__ == "__main__":
    main()
