"""Throughput and latency of the prediction API against `mlflow models serve`, same model, same requests.

    make quickstart                               # a champion in ./.forecaster (or set FORECASTER_HOME)
    python benchmarks/bench_service.py            # 2 workers each, concurrency 1, 8, 32, 10 s per run
    python benchmarks/bench_service.py --workers 1 --duration 5

Both servers run on loopback on this machine with the same number of workers and serve
models:/fcm-lstm@champion; each request forecasts one ticker from 60 bars of history, horizon 5.
Load comes from wrk (Debian package `wrk`); figures are wrk's own latency percentiles.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from forecaster.config import Settings
from forecaster.data import PriceStore

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.body = f:read("*a")
f:close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(settings: Settings, ticker: str) -> tuple[dict, dict]:
    bars = PriceStore(settings.price_dir).read([ticker]).tail(60)
    rows = [
        {"date": str(r.date.date()), "open": r.open, "high": r.high, "low": r.low, "close": r.close,
         "adj_close": r.adj_close, "volume": float(r.volume)}
        for r in bars.itertuples()
    ]  # fmt: skip
    ours = {"bars": rows, "horizon": 5}
    columns = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume"]
    theirs = {
        "dataframe_split": {
            "columns": columns,
            "data": [[ticker] + [r[c] for c in columns[1:]] for r in rows],
        }
    }
    return ours, theirs


def start(command: list[str], url: str, env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{command[2]} exited: see {log}")
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not come up; see {log}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def wrk(url: str, body: dict, connections: int, duration: int, workdir: Path) -> dict:
    body_file, script = workdir / "body.json", workdir / "post.lua"
    body_file.write_text(json.dumps(body))
    script.write_text(LUA)
    threads = min(connections, 2)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "-s",
        str(script),
        "--latency",
        url,
    ]
    out = subprocess.run(
        command, env={**os.environ, "BODY_FILE": str(body_file)}, capture_output=True, text=True
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50"), "p90": ms("90"), "p99": ms("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--ticker", default="^GSPC")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    settings = Settings()
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri, "FORECASTER_HOME": str(settings.home)}
    # `mlflow models serve` starts the `uvicorn` script of its environment: this one's, not another on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ours_body, theirs_body = bodies(settings, args.ticker)
    servers = {
        "fastapi (this service)": (
            [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app", "--workers", str(args.workers),
             "--log-level", "warning"],
            "/readyz", "/v1/forecast", ours_body,
        ),
        "mlflow models serve": (
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/fcm-lstm@champion",
             "--env-manager", "local", "-w", str(args.workers)],
            "/ping", "/invocations", theirs_body,
        ),
    }  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (command, ready, path, body) in servers.items():
            port = free_port()
            command = command + ["--port", str(port)] + (["--host", "127.0.0.1"] if "mlflow" in name else [])
            process = start(command, f"http://127.0.0.1:{port}{ready}", env, Path(tmp) / f"{port}.log")
            try:
                check = requests.post(f"http://127.0.0.1:{port}{path}", json=body, timeout=30)
                check.raise_for_status()
                for c in args.concurrency:
                    results[(name, c)] = wrk(
                        f"http://127.0.0.1:{port}{path}", body, c, args.duration, Path(tmp)
                    )
            finally:
                stop(process)

    print(
        f"{args.workers} worker(s) each, {args.duration} s per run, {os.cpu_count()} cores, one ticker, 60 bars, H=5"
    )
    print(f"{'server':<24}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for (name, c), r in results.items():
        print(
            f"{name:<24}{c:>5}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p90']:>9.2f}{r['p99']:>9.2f}{r['errors']:>9}"
        )
    for c in args.concurrency:
        ratio = results[("fastapi (this service)", c)]["rps"] / results[("mlflow models serve", c)]["rps"]
        print(f"concurrency {c}: this service does {ratio:.1f}x the requests/s of mlflow models serve")


if __name__ == "__main__":
    main()
