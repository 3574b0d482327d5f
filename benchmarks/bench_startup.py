"""Cold starts people wait for: `--version`, `--help`, the batch job's imports, `serve` to its first ready answer.

    make quickstart                              # a champion in ./.forecaster (or set FORECASTER_HOME)
    python benchmarks/bench_startup.py           # best of 3 for the commands, one serve start per worker count
    python benchmarks/bench_startup.py --repeats 5 --workers 1 2

Prints wall seconds: `forecaster --version`, `forecaster --help`, `python -c "import
pipelines.batch_forecast"` (what the scheduler pays before the job does anything), and for
`forecaster serve --workers N` the time from launch to the first 200 on /readyz (the model loaded
in every worker). Figures depend on the machine and its load; the script prints the load.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def best_of(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - started)
    return min(times)


def serve_ready_seconds(workers: int, timeout: float = 180.0) -> float:
    port = free_port()
    started = time.perf_counter()
    command = [str(BIN / "forecaster"), "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"forecaster serve exited with {server.returncode}: is there a champion?")
            time.sleep(0.05)
        raise TimeoutError(f"no 200 on /readyz within {timeout:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, FORECASTER_HOME={os.environ.get('FORECASTER_HOME', '.forecaster')}"
    )
    commands = {
        "forecaster --version": [str(BIN / "forecaster"), "--version"],
        "forecaster --help": [str(BIN / "forecaster"), "--help"],
        "import pipelines.batch_forecast": [sys.executable, "-c", "import pipelines.batch_forecast"],
    }
    for name, command in commands.items():
        print(f"{name:>36}: {best_of(command, args.repeats):6.2f} s (best of {args.repeats})", flush=True)
    for workers in args.workers:
        seconds = serve_ready_seconds(workers)
        print(f"{f'serve --workers {workers} -> /readyz 200':>36}: {seconds:6.2f} s", flush=True)


if __name__ == "__main__":
    main()
