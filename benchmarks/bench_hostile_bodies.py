"""Hostile request bodies against a real uvicorn worker: what each gets, how fast, what it costs.

    python benchmarks/bench_hostile_bodies.py              # ~1 min: a tiny model, one worker
    python benchmarks/bench_hostile_bodies.py --trickle-every 10   # the campaign's 1 byte / 10 s

Rows: a 150 MB chunked body with and without a key, a declared 150 MB Content-Length, a body
trickling one byte every N s (FORECASTER_BODY_TIMEOUT_S=10), and the event loop's lag
(/healthz latency) while four clients post 5,000-bar bodies, with large bodies validated in a
thread (as served) and on the loop (FastAPI's default path, for comparison).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

KEY = "bench-key"
SERVER = """
import sys, uvicorn
if sys.argv[2] == "on-loop":
    import service.json_body
    service.json_body.OFFLOAD_BYTES = 10**12  # every body through FastAPI's own path
uvicorn.run("service.main:create_app", factory=True, port=int(sys.argv[1]), log_level="warning")
"""


def tiny_model(home: Path) -> Path:
    from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
    from forecaster.model import FuzzyLSTMForecaster

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    bars = pd.DataFrame({
        "ticker": "AAA", "date": pd.bdate_range("2010-01-04", periods=400), "open": close,
        "high": close * 1.01, "low": close * 0.99, "close": close, "adj_close": close, "volume": 1e6,
    })  # fmt: skip
    config = ForecasterConfig(
        window=WindowConfig(window=30, horizon=5),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    return FuzzyLSTMForecaster(config).fit(bars, progress=False).save(home / "model")


@contextlib.contextmanager
def server(home: Path, model: Path, mode: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FORECASTER_HOME": str(home), "FORECASTER_MODEL_URI": str(model),
           "FORECASTER_API_KEYS": KEY, "FORECASTER_BODY_TIMEOUT_S": "10", "FORECASTER_RELOAD_INTERVAL_S": "0"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), mode], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/readyz", timeout=1).ok:
                    break
            time.sleep(0.5)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1]) / 1024


def raw_post(url: str, headers: dict, chunks, chunked: bool = True, length: int | None = None):
    """Stream a body from a thread; returns (status, seconds to the answer, bytes sent)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    head = f"POST /v1/forecast HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent, start = [0], time.monotonic()
    sock.sendall(head.encode())

    def stream():
        with contextlib.suppress(OSError):
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent[0] += len(chunk)

    threading.Thread(target=stream, daemon=True).start()
    answer = b""
    with contextlib.suppress(OSError):
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    elapsed = time.monotonic() - start
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, elapsed, sent[0]


def endless(size: int):
    chunk = b"[" + b"1.0," * 16383
    for _ in range(size // len(chunk)):
        yield chunk


def trickle(every: float):
    for _ in range(1000):
        yield b" "
        time.sleep(every)


def drill(url: str, pid: int, name: str, *args, **kwargs) -> None:
    before, peak, result = rss_mb(pid), rss_mb(pid), {}
    worker = threading.Thread(target=lambda: result.update(out=raw_post(url, *args, **kwargs)))
    worker.start()
    while worker.is_alive():
        peak = max(peak, rss_mb(pid))
        time.sleep(0.02)
    status, elapsed, sent = result["out"]
    print(f"| {name:<44} | {status:>6} | {elapsed:>7.2f} | {sent / 1e6:>9.1f} | {peak - before:>12.1f} |")


def loop_lag(url: str, body: bytes, seconds: float = 5.0) -> tuple[float, float, float, int]:
    """/healthz latency (p50, p99, max ms) while 4 clients post `body` back to back."""
    stop, posted = threading.Event(), [0]

    def load():
        with requests.Session() as s:
            while not stop.is_set():
                s.post(f"{url}/v1/forecast", data=body, timeout=30,
                       headers={"X-API-Key": KEY, "content-type": "application/json"})  # fmt: skip
                posted[0] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    lat = []
    with requests.Session() as s:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            s.get(f"{url}/healthz", timeout=10)
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join()
    lat = np.array(lat)
    return float(np.median(lat)), float(np.percentile(lat, 99)), float(lat.max()), posted[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trickle-every", type=float, default=2.0, help="seconds between trickled bytes")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hostile-"))
    model = tiny_model(home)
    with server(home, model, "served") as (url, pid):
        print(f"worker RSS at start: {rss_mb(pid):.0f} MB; limit 2,000,000 bytes; body deadline 10 s\n")
        print(f"| {'request':<44} | status | seconds | MB sent   | RSS growth MB |")
        print(f"|{'-' * 46}|--------|---------|-----------|---------------|")
        drill(url, pid, "150 MB chunked, valid key", {"X-API-Key": KEY}, endless(150_000_000))
        drill(url, pid, "150 MB chunked, no key", {}, endless(150_000_000))
        drill(url, pid, "30 MB chunked, no key", {}, endless(30_000_000))
        drill(url, pid, "Content-Length 150 MB, valid key", {"X-API-Key": KEY}, endless(150_000_000),
              chunked=False, length=150_000_000)  # fmt: skip
        drill(url, pid, f"1 byte every {args.trickle_every:g} s, valid key", {"X-API-Key": KEY},
              trickle(args.trickle_every))  # fmt: skip
    from forecaster.data.sessions import future_sessions

    # 5,000 XNYS sessions from 2000-01-03: the API refuses bars on days without a session.
    days = future_sessions(np.array([np.datetime64("2000-01-02")]), 5000, "XNYS")[0]
    rows = [{"date": str(day), "high": 101.0, "low": 99.0, "close": 100.0 + (i % 2), "volume": 1e6}
            for i, day in enumerate(days)]  # fmt: skip
    body = json.dumps({"bars": rows}).encode()
    print(
        f"\nevent-loop lag: /healthz latency while 4 clients post {len(body) / 1e6:.2f} MB bodies (5,000 bars)\n"
    )
    print("| large bodies validated   | p50 ms | p99 ms | max ms | bodies posted in 5 s |")
    print("|--------------------------|--------|--------|--------|----------------------|")
    for mode, label in (("served", "in a thread (served)"), ("on-loop", "on the loop (FastAPI)")):
        with server(home, model, mode) as (url, _):
            p50, p99, worst, posted = loop_lag(url, body)
        print(f"| {label:<24} | {p50:>6.1f} | {p99:>6.1f} | {worst:>6.1f} | {posted:>20} |")


if __name__ == "__main__":
    main()
