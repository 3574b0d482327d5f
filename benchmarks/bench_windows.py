"""Peak memory and wall time of loading the 200-ticker universe and cutting it into windows.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_windows.py [--source PATH] [--features log_return,log_range]

Each stage runs in a fresh process, so the peak RSS it prints is that stage's own (it includes
the stages before it in the same process: loading for `windows`, both for `scaler` and `x`).
Stages: `load` (load_bars), `windows` (load + make_windows), `scaler` (+ split_windows and
FeatureScaler.fit on the training split), `x` (+ materialising every window as [N, L, F]).
The file has one bad print (NUE, 2007-01-16); where load_bars cannot quarantine it (before the
robust loads), the benchmark drops NUE itself and says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "us-stocks-2000-2017.parquet"
STAGES = ("load", "windows", "scaler", "x")
WINDOW_FEATURES = ("log_return", "log_range")  # WindowConfig's default


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_stage(stage: str, source: str, features: str) -> dict:
    import pandas as pd

    from forecaster.config import WindowConfig
    from forecaster.data import DataValidationError, load_bars, validate_bars
    from forecaster.features.scaler import FeatureScaler
    from forecaster.features.splits import split_windows
    from forecaster.features.windows import make_windows

    out: dict = {"stage": stage, "baseline_mb": round(_peak_mb())}
    t0 = time.perf_counter()
    try:
        bars = load_bars(source)
        report = bars.attrs.get("quarantine")
        out["quarantined"] = [] if report is None else report.tickers
    except DataValidationError as exc:  # a load without quarantine stops on the bad print
        out["load_error"] = str(exc)
        raw = pd.read_parquet(source)
        bars = validate_bars(raw[raw["ticker"] != exc.ticker])
        out["quarantined"] = [f"{exc.ticker} (dropped by the benchmark)"]
    out["load_s"] = round(time.perf_counter() - t0, 2)
    out["rows"], out["tickers"] = len(bars), int(bars["ticker"].nunique())
    if stage != "load":
        config = WindowConfig(features=tuple(features.split(",")))
        t0 = time.perf_counter()
        windows = make_windows(bars, config)
        out["windows_s"] = round(time.perf_counter() - t0, 2)
        out["n_windows"] = len(windows)
        if stage in ("scaler", "x"):
            t0 = time.perf_counter()
            train = split_windows(windows, config)["train"]
            FeatureScaler().fit(train)
            out["split_and_scaler_s"] = round(time.perf_counter() - t0, 2)
        if stage == "x":
            t0 = time.perf_counter()
            out["x_mb"] = round(windows.x.nbytes / 2**20)
            out["x_s"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mb"] = round(_peak_mb())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default=str(DEFAULT.resolve()))
    parser.add_argument(
        "--features", default=",".join(WINDOW_FEATURES), help="comma-separated daily features"
    )
    parser.add_argument("--stage", choices=STAGES, help="run one stage in this process (internal)")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.source, args.features)))
        return
    if not Path(args.source).is_file():
        sys.exit(f"no file at {args.source}; pass --source")
    import forecaster

    print(
        f"forecaster from {Path(forecaster.__file__).parent}, source {args.source}, features {args.features}"
    )
    for stage in STAGES:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--stage",
                stage,
                "--source",
                args.source,
                "--features",
                args.features,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
