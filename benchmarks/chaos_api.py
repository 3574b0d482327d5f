"""Registry outage drills against a real API (`service.main.serve`, 2 workers) and a real `mlflow server`.

Usage:
    python benchmarks/chaos_api.py                 # ~2 minutes on 2 CPU cores
    python benchmarks/chaos_api.py --phase-s 20 --clients 8

Setup (not timed): a tiny model trained on synthetic bars, registered and promoted to champion
in a SQLite store under a fresh FORECASTER_HOME, served by `mlflow server` on a loopback port.
Then, with `--clients` threads posting forecasts all the time, the drills:
  1. registry up: the baseline;
  2. registry down during serving (the mlflow server stopped);
  3. a worker killed (-9) during the outage: uvicorn restarts it, it loads the cached champion;
  4. registry back: seconds until both workers report `source: registry`;
  5. a cold start with the registry down and the cache present: seconds to ready;
  6. a cold start with the registry down and no cache: 503 and still running, then the registry
     comes back: seconds to ready;
  7. header slow-loris: `--slowloris` connections that send nothing and as many that send half a
     request head, held `--hold-s` seconds: how many the API closed, after how long (it must close
     them all at FORECASTER_HEADER_TIMEOUT_S, `--header-timeout-s`), and /healthz meanwhile;
  8. tampered serving cache: the cached weights altered (every weight x3) while the registry is
     down: a restart must refuse the copy (503, saying why); a restart with the registry up must
     replace it and serve the registered weights again.
Each phase prints requests by status; the drills pass when no forecast failed in 1-5 and every
slow-loris connection was closed in 7, and the tampered copy was refused then replaced in 8. (What a reverse proxy must still do: service.protocol.)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import selectors
import shutil
import signal
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait(predicate, timeout: float) -> float | None:
    """Seconds until predicate() is true, or None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(requests.RequestException):
            if predicate():
                return time.monotonic() - t0
        time.sleep(0.2)
    return None


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


class Load:
    """Client threads posting forecasts; counts answers by status (or exception name) per phase."""

    def __init__(self, url: str, clients: int):
        self.url, self.counts, self.stop = url, collections.Counter(), threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _loop(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    r = session.post(
                        f"{self.url}/v1/forecast", json={"ticker": "AAA", "horizon": 2}, timeout=30
                    )
                    self.counts[r.status_code] += 1
                except requests.RequestException as exc:
                    self.counts[type(exc).__name__] += 1
                    time.sleep(0.05)

    def phase(self, seconds: float) -> dict:
        before = self.counts.copy()
        time.sleep(seconds)
        return dict(self.counts - before)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=35)


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes (spawned children; not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    cmdlines = {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in pids if Path(f"/proc/{p}").exists()}
    return [p for p, cmd in cmdlines.items() if b"spawn_main" in cmd and b"resource_tracker" not in cmd]


def header_slowloris(url: str, n: int, hold_s: float) -> dict[str, list]:
    """`n` idle and `n` half-header connections held up to `hold_s`: per kind, (seconds, first bytes
    of the answer) of each connection the server closed."""
    host, port = url.removeprefix("http://").split(":")
    sel, closed = selectors.DefaultSelector(), {"idle": [], "half-header": []}
    t0 = time.monotonic()
    for _ in range(n):
        for kind in closed:
            sock = socket.create_connection((host, int(port)), timeout=10)
            if kind == "half-header":
                sock.sendall(b"POST /v1/forecast HTTP/1.1\r\nHost: chaos\r\nContent-Ty")
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, (kind, bytearray()))
    while sel.get_map() and time.monotonic() - t0 < hold_s:
        for key, _ in sel.select(timeout=0.5):
            kind, answer = key.data
            try:
                data = key.fileobj.recv(4096)
            except OSError:  # reset: closed too
                data = b""
            answer += data
            if not data:
                closed[kind].append((time.monotonic() - t0, bytes(answer[:12])))
                sel.unregister(key.fileobj)
                key.fileobj.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return closed


def report_slowloris(closed: dict[str, list], n: int, healthz: str) -> bool:
    for kind, ends in closed.items():
        times = [t for t, _ in ends]
        statuses = collections.Counter(a.split(b" ")[1].decode() if a else "none" for _, a in ends)
        span = f"after {min(times):.1f}-{max(times):.1f} s" if times else ""
        print(f"   {kind:<12} closed {len(ends):>4}/{n} {span}  answers by status={dict(statuses)}")
    print(f"   /healthz during the attack: {healthz}")
    return all(len(ends) == n for ends in closed.values())


def setup(home: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from forecaster import tracking
    from forecaster.config import (
        ClusterConfig,
        ExpertConfig,
        ForecasterConfig,
        Settings,
        TrainConfig,
        WindowConfig,
    )
    from forecaster.data import PriceStore
    from forecaster.model import FuzzyLSTMForecaster

    rng = np.random.default_rng(0)
    frames = []
    for ticker in ("AAA", "BBB"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
        frames.append(
            pd.DataFrame(
                {"ticker": ticker, "date": pd.bdate_range("2010-01-04", periods=300), "open": close,
                 "high": close * 1.01, "low": close * 0.99, "close": close, "adj_close": close, "volume": 1e6}
            )
        )  # fmt: skip
    bars = pd.concat(frames, ignore_index=True)
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    settings = Settings(home=home)
    tracking.log_training_run(FuzzyLSTMForecaster(config).fit(bars, progress=False), bars, settings)
    tracking.promote(settings, bars)
    PriceStore(settings.price_dir).write(bars)


def steps(url: str) -> list[float] | None:
    r = requests.post(f"{url}/v1/forecast", json={"ticker": "AAA", "horizon": 2}, timeout=30)
    return [step["forecast"] for step in r.json()["steps"]] if r.ok else None


def tampered_cache(url: str, home: Path, api, mlflow, start_api, start_mlflow) -> bool:
    """8. The serving cache's weights altered (a valid file, every weight x3) with the registry down,
    then a restart with the registry up: refused first, replaced by the registry's copy after."""
    import torch

    genuine = steps(url)
    stop(api)
    stop(mlflow)
    altered = sorted((home / "serving-cache").rglob("weights.pt"))
    for path in altered:
        weights = torch.load(path, weights_only=True)
        torch.save({k: v * 3 for k, v in weights.items()}, path)
    api = start_api()
    t = wait(lambda: get(f"{url}/readyz").status_code == 503, 120)
    detail = get(f"{url}/readyz").json().get("detail", "") if t is not None else ""
    refused = t is not None and "changed since it was cached" in detail and steps(url) is None
    print(f"8. tampered cache ({len(altered)} weights.pt x3), registry down: "
          f"{'refused' if refused else 'SERVED'}, readyz 503 after {t and round(t, 1)} s")  # fmt: skip
    print(f"   readyz said: ...{detail[detail.find('the cached copy') :][:150]}")
    stop(api)
    mlflow = start_mlflow()
    wait(lambda: get(f"{url.rsplit(':', 1)[0]}:{_port_of(mlflow)}/health").ok, 180)
    api = start_api()
    back = wait(lambda: get(f"{url}/readyz").ok, 180)
    source = get(f"{url}/readyz").json().get("source") if back is not None else None
    same = back is not None and steps(url) == genuine
    print(f"   restarted with the registry up: ready {back and round(back, 1)} s, source={source}, "
          f"serves the registered weights again: {same}")  # fmt: skip
    stop(api)
    stop(mlflow)
    return refused and same and source == "registry"


def _port_of(proc: subprocess.Popen) -> str:
    """The --port of a started `mlflow server` command line."""
    args = proc.args
    return args[args.index("--port") + 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phase-s", type=float, default=10.0, help="seconds of load per phase")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--slowloris", type=int, default=250, help="idle and half-header connections, each")
    parser.add_argument("--hold-s", type=float, default=40.0, help="how long slow-loris connections are held")
    parser.add_argument("--header-timeout-s", type=float, default=10.0, help="FORECASTER_HEADER_TIMEOUT_S")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="chaos-api-"))
    home = root / "home"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    setup(home)
    mlflow_port, api_port = free_port(), free_port()
    registry_url = f"http://127.0.0.1:{mlflow_port}"
    mlflow_cmd = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
    ]  # fmt: skip
    env = {
        **os.environ, "FORECASTER_HOME": str(home), "FORECASTER_SOURCE": "cache",
        "MLFLOW_TRACKING_URI": registry_url, "FORECASTER_REGISTRY_RETRY_S": "1",
        "FORECASTER_RELOAD_INTERVAL_S": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3", "OMP_NUM_THREADS": "1",
        "FORECASTER_HEADER_TIMEOUT_S": str(args.header_timeout_s),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }  # fmt: skip
    api_cmd = [sys.executable, "-c", f"from service.main import serve; serve(port={api_port}, workers=2)"]
    url = f"http://127.0.0.1:{api_port}"
    ok = True

    def report(name: str, counts: dict, extra: str = "") -> None:
        nonlocal ok
        failed = sum(v for k, v in counts.items() if k != 200)
        print(f"{name:<44} requests={sum(counts.values()):>6}  by status={counts}  failed={failed}  {extra}")

    mlflow = start(mlflow_cmd, root / "mlflow.log", env)
    assert wait(lambda: get(f"{registry_url}/health").ok, 180) is not None, "mlflow server did not start"
    api = start(api_cmd, root / "api.log", env)
    t = wait(lambda: get(f"{url}/readyz").ok, 180)
    print(f"API ready (registry up) after {t:.1f} s; logs in {root}")
    load = Load(url, args.clients)
    try:
        counts = load.phase(args.phase_s)
        report("1. registry up", counts)
        ok &= set(counts) == {200}

        stop(mlflow)
        counts = load.phase(args.phase_s)
        ready = get(f"{url}/readyz").json()
        report("2. registry down during serving", counts, f"readyz source={ready['source']}")
        ok &= set(counts) == {200}

        victim = worker_pids(api.pid)[0]
        before = load.counts.copy()
        os.kill(victim, signal.SIGKILL)
        # The replacement starts during the outage: it serves the cached champion once up.
        t = wait(lambda: get(f"{url}/v1/model").json()["source"] == "cache", 120)
        counts = dict(load.counts - before)
        workers = worker_pids(api.pid)
        report(
            "3. worker killed -9 during the outage", counts,
            f"replacement serving the cache after {t and round(t, 1)} s; workers {len(workers)}, "
            f"API alive: {api.poll() is None}",
        )  # fmt: skip
        # Connection errors: requests in flight on the killed worker; no HTTP error is allowed.
        ok &= t is not None and api.poll() is None and all(k == 200 or isinstance(k, str) for k in counts)

        mlflow = start(mlflow_cmd, root / "mlflow.log", env)
        t0 = time.monotonic()
        wait(lambda: get(f"{registry_url}/health").ok, 180)
        up = time.monotonic() - t0

        def all_registry() -> bool:
            return all(get(f"{url}/v1/model").json()["source"] == "registry" for _ in range(10))

        t = wait(all_registry, 60)
        counts = load.phase(1.0)
        report(
            "4. registry back",
            counts,
            f"server up in {up:.1f} s, workers on registry {t and round(t, 1)} s later",
        )
        ok &= t is not None
    finally:
        load.close()
        stop(api)

    # 5. Cold start, registry down, the cache present (written by the workers above).
    stop(mlflow)
    api = start(api_cmd, root / "api.log", env)
    t = wait(lambda: get(f"{url}/readyz").ok, 120)
    source = get(f"{url}/readyz").json().get("source") if t else None
    print(f"5. cold start, registry down, cache present   ready after {t and round(t, 1)} s, source={source}")
    ok &= t is not None and source == "cache"
    stop(api)

    # 6. Cold start, registry down, no cache: not ready but alive; ready once the registry is back.
    shutil.rmtree(home / "serving-cache")
    api = start(api_cmd, root / "api.log", env)
    t = wait(lambda: get(f"{url}/readyz").status_code == 503, 120)
    time.sleep(5)
    alive = api.poll() is None
    detail = get(f"{url}/readyz").json()["detail"]
    mlflow = start(mlflow_cmd, root / "mlflow.log", env)
    t0 = time.monotonic()
    back = wait(lambda: get(f"{url}/readyz").ok, 180)
    print(
        f"6. cold start, registry down, no cache        503 after {t and round(t, 1)} s, alive 5 s later: {alive}"
    )
    print(f"   readyz said: {detail[:160]}")
    print(f"   registry restarted: ready {back and round(back, 1)} s later (mlflow server start included)")
    ok &= alive and back is not None

    # 7. Header slow-loris against the ready API.
    print(f"7. header slow-loris: {args.slowloris} idle + {args.slowloris} half-header connections, "
          f"held up to {args.hold_s:g} s (header timeout {args.header_timeout_s:g} s)")  # fmt: skip
    healthz = {}

    def probe() -> None:
        time.sleep(min(args.header_timeout_s, args.hold_s) / 2)
        t0 = time.monotonic()
        try:
            healthz["answer"] = (
                f"{get(f'{url}/healthz').status_code} in {1000 * (time.monotonic() - t0):.0f} ms"
            )
        except requests.RequestException as exc:
            healthz["answer"] = type(exc).__name__

    prober = threading.Thread(target=probe)
    prober.start()
    closed = header_slowloris(url, args.slowloris, args.hold_s)
    prober.join()
    ok &= report_slowloris(closed, args.slowloris, healthz.get("answer", "no answer"))
    ok &= tampered_cache(url, home, api, mlflow, lambda: start(api_cmd, root / "api.log", env),
                         lambda: start(mlflow_cmd, root / "mlflow.log", env))  # fmt: skip
    print("PASS" if ok else "FAIL")
    shutil.rmtree(root, ignore_errors=True) if ok else None
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
