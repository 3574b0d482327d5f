"""Latency of `POST /v1/rank` for 100 stored tickers: p50 / p99 over sequential requests.

Usage:
    python benchmarks/bench_rank_api.py                    # 100 tickers, 50 requests, 10,000 paths
    python benchmarks/bench_rank_api.py --tickers 200 --requests 100 --paths 5000

Self-contained: a temporary FORECASTER_HOME gets synthetic bars of N tickers (600 sessions of a
one-factor model, volatilities 1%..3% a day) in its price store and a tiny model (window 30,
horizon 5, 2 clusters, hidden 16, 1 epoch on 10 of the tickers) served from its directory by one
uvicorn worker on loopback. Two runs: `warm`, the default settings (a repeated request reuses the
worker's cached simulation: what a client polling the same universe gets) and `cold`
(FORECASTER_JOINT_CACHE_SIZE=0: every request reads the bars, forecasts, fits the copula and
simulates). One request at a time, after one unmeasured request. Goal: p99 < 300 ms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.data import PriceStore
from forecaster.model import FuzzyLSTMForecaster


def synthetic_bars(n: int, days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sigma = np.linspace(0.01, 0.03, n)
    market = 0.008 * rng.standard_normal((days, 1))
    returns = market * rng.uniform(0.5, 1.5, n) + rng.standard_normal((days, n)) * sigma  # [T, N]
    close = 100 * np.exp(np.cumsum(returns, axis=0))
    dates = pd.bdate_range("2016-01-04", periods=days)
    frames = []
    for j in range(n):
        c = close[:, j]
        spread = 0.002 + np.abs(returns[:, j]) / 2
        frames.append(
            pd.DataFrame(
                {"ticker": f"T{j:03d}", "date": dates, "open": c, "high": c * (1 + spread),
                 "low": c * (1 - spread), "close": c, "adj_close": c, "volume": 1e6}
            )
        )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def serve(home: Path, model_dir: Path, port: int, env: dict) -> subprocess.Popen:
    environment = {**os.environ, "FORECASTER_HOME": str(home), "FORECASTER_SOURCE": "cache",
                   "FORECASTER_MODEL_URI": str(model_dir), "FORECASTER_RELOAD_INTERVAL_S": "0", **env}  # fmt: skip
    environment.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    log = open(home / f"uvicorn-{port}.log", "w")
    process = subprocess.Popen(
        command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: see {home / f'uvicorn-{port}.log'}")
        time.sleep(0.5)
    raise TimeoutError("the server did not come up")


def measure(url: str, body: dict, n: int) -> np.ndarray:
    with requests.Session() as session:
        session.post(url, json=body, timeout=120).raise_for_status()  # unmeasured: loads what it needs
        times = []
        for _ in range(n):
            start = time.perf_counter()
            r = session.post(url, json=body, timeout=120)
            times.append(time.perf_counter() - start)
            r.raise_for_status()
    return 1000 * np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        bars = synthetic_bars(args.tickers, 600)
        PriceStore(home / "prices").write(bars)
        config = ForecasterConfig(
            window=WindowConfig(window=30, horizon=5),
            cluster=ClusterConfig(n_clusters=2),
            expert=ExpertConfig(hidden_size=16),
            train=TrainConfig(epochs=1, batch_size=256, device="cpu", fine_tune_epochs=0),
        )
        train = bars[bars["ticker"].isin(sorted(bars["ticker"].unique())[:10])]
        FuzzyLSTMForecaster(config).fit(train, progress=False).save(home / "model")
        body = {"tickers": sorted(bars["ticker"].unique()), "horizon": 5}
        results = {}
        for name, env in (("warm", {}), ("cold", {"FORECASTER_JOINT_CACHE_SIZE": "0"})):
            env = {**env, "FORECASTER_JOINT_PATHS": str(args.paths)}
            process = serve(home, home / "model", args.port, env)
            try:
                results[name] = measure(f"http://127.0.0.1:{args.port}/v1/rank", body, args.requests)
            finally:
                os.killpg(process.pid, 15)
                process.wait(timeout=30)

    print(f"POST /v1/rank: {args.tickers} tickers, {args.paths:,} paths, horizon 5, {args.requests} sequential "
          f"requests, 1 uvicorn worker, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'run':<6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, ms in results.items():
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        print(f"{name:<6}{p50:>9.1f}{p90:>9.1f}{p99:>9.1f}{ms.max():>9.1f}")
    print(f"goal p99 < 300 ms: warm {'met' if np.percentile(results['warm'], 99) < 300 else 'missed'}, "
          f"cold {'met' if np.percentile(results['cold'], 99) < 300 else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
