"""Batch forecast of a 500-ticker universe, download excluded: wall time and peak memory.

Usage:
    python benchmarks/bench_batch_forecast.py                 # 500 tickers x 1,000 days
    python benchmarks/bench_batch_forecast.py --tickers 2000 --days 2500

Setup (not timed): synthetic random-walk bars for every ticker in a fresh price store, and a
model with the default architecture (window 30, 3 experts, hidden 64) trained for one epoch on
a few tickers, registered and promoted to champion in a fresh SQLite MLflow store. Then a
separate process runs the job `pipelines.batch_forecast.run` (load the champion, read the
universe from Parquet, one batched forecast, write the rows to SQLite) and reports its wall
time per stage and its peak resident memory (ru_maxrss), so setup costs do not count.
Goals on 2 CPU cores: under 10 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_bars(n_tickers: int, n_days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=n_days).astype("datetime64[us]")
    returns = rng.normal(0, 0.015, (n_tickers, n_days))
    close = 50 * np.exp(np.cumsum(returns, axis=1))
    open_ = close * np.exp(rng.normal(0, 0.003, close.shape))
    spread = 1 + np.abs(rng.normal(0, 0.01, close.shape))
    return pd.DataFrame(
        {
            "ticker": np.repeat([f"T{i:04d}" for i in range(n_tickers)], n_days),
            "date": np.tile(dates, n_tickers),
            "open": open_.ravel(),
            "high": (np.maximum(open_, close) * spread).ravel(),
            "low": (np.minimum(open_, close) / spread).ravel(),
            "close": close.ravel(),
            "adj_close": close.ravel(),
            "volume": 1e6,
        }
    )


def setup(home: Path, n_tickers: int, n_days: int) -> list[str]:
    from forecaster import tracking
    from forecaster.config import ForecasterConfig, Settings, TrainConfig
    from forecaster.data import PriceStore
    from forecaster.model import FuzzyLSTMForecaster

    bars = synthetic_bars(n_tickers, n_days)
    PriceStore(home / "prices").write(bars)
    train_bars = bars[bars["ticker"].isin(bars["ticker"].unique()[:4])]
    config = ForecasterConfig(train=TrainConfig(epochs=1, device="cpu"))
    model = FuzzyLSTMForecaster(config).fit(train_bars, progress=False)
    settings = Settings(home=home)
    tracking.log_training_run(model, train_bars, settings)
    tracking.promote(settings, train_bars)
    return sorted(bars["ticker"].unique())


def measure(home: Path, universe_file: Path) -> dict:
    """Runs in a fresh process: the job's stages, timed, then the whole job once more."""
    started = time.perf_counter()
    from forecaster import forecast_store, tracking
    from forecaster.config import Settings
    from forecaster.data import PriceStore
    from forecaster.data.universe import universe_tickers
    from pipelines import batch_forecast

    imported = time.perf_counter()
    settings = Settings(home=home, universe_file=universe_file)
    engine = forecast_store.connect(settings.forecast_store_url)
    t0 = time.perf_counter()
    champion = tracking.load_registered(settings)
    t1 = time.perf_counter()
    bars, _ = batch_forecast.read_universe(PriceStore(settings.price_dir), universe_tickers(settings))
    t2 = time.perf_counter()
    rows, result = batch_forecast.forecast(
        champion.model, bars, model_name=champion.name, model_version="bench"
    )
    t3 = time.perf_counter()
    written = forecast_store.write_forecasts(engine, rows)
    t4 = time.perf_counter()
    job = batch_forecast.run(settings, engine=engine)  # the real job, end to end
    t5 = time.perf_counter()
    return {
        "tickers": len(result.forecast),
        "bars": len(bars),
        "rows_written": written,
        "job_rows_written": job.rows_written,
        "import_s": imported - started,
        "load_champion_s": t1 - t0,
        "read_bars_s": t2 - t1,
        "forecast_s": t3 - t2,
        "write_rows_s": t4 - t3,
        "job_end_to_end_s": t5 - t4,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--measure", nargs=2, metavar=("HOME", "UNIVERSE_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        print(f"setup: {args.tickers} tickers x {args.days} days, training a small champion ...", flush=True)
        tickers = setup(home, args.tickers, args.days)
        universe = Path(tmp) / "universe.txt"
        universe.write_text("\n".join(tickers) + "\n")
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(home), str(universe)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"{figures['tickers']} tickers, {figures['bars']:,} bars, {figures['rows_written']:,} rows")
    for key in ("import_s", "load_champion_s", "read_bars_s", "forecast_s", "write_rows_s"):
        print(f"  {key[:-2]:<16} {figures[key]:6.2f} s")
    stages = sum(figures[k] for k in ("load_champion_s", "read_bars_s", "forecast_s", "write_rows_s"))
    print(f"  {'stages total':<16} {stages:6.2f} s   (goal < 10 s)")
    print(
        f"job end to end (pipelines.batch_forecast.run, rows already stored): {figures['job_end_to_end_s']:.2f} s"
    )
    print(f"peak memory of the forecasting process: {figures['peak_rss_mb']:,.0f} MB (goal < 2,048 MB)")


if __name__ == "__main__":
    main()
