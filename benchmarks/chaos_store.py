"""Chaos drills for the stores: concurrent first start, kill -9 mid-job, concurrent upserts.

Usage:
    python benchmarks/chaos_store.py                      # 10 trials of each drill
    python benchmarks/chaos_store.py --trials 3 --processes 8
    FORECASTER_TEST_PG=postgresql://postgres@127.0.0.1:5432/postgres python benchmarks/chaos_store.py

Drills (every process is a real process):
1. first start: N processes connect at the same moment to a fresh PostgreSQL database, once
   with the old `metadata.create_all` and once with `forecast_store.connect` (Alembic under
   an advisory lock). Prints failures per trial and the time until all are connected.
2. kill -9: a job records its run (heartbeat 0.2 s) and upserts prices in a loop; it is killed
   at a random moment. Then: is the run marked `interrupted` at the next start, are the price
   files readable, how many temporary files were left and are they removed.
3. concurrent upserts: two processes upsert disjoint days of one ticker; rows lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ENV = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
PG_ADMIN = os.environ.get("FORECASTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

from forecaster import forecast_store  # noqa: E402
from forecaster.data import PriceStore  # noqa: E402

FIRST_START = """
import sys, time
from pathlib import Path
import sqlalchemy as sa
import alembic.command, alembic.runtime.migration
from forecaster import forecast_store
mode, url, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
if mode == "create_all":  # what connect() did before: no lock, no version
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    forecast_store.metadata.create_all(engine)
else:
    engine = forecast_store.connect(url)
engine.dispose()
"""

KILLED_JOB = """
import sys
import numpy as np, pandas as pd
from forecaster import forecast_store
from forecaster.data import PriceStore
url, root = sys.argv[1], sys.argv[2]
engine = forecast_store.connect(url)
store = PriceStore(root)
with forecast_store.record_run(engine, "ingest", heartbeat_s=0.2) as record:
    print(record.id, flush=True)
    days = pd.bdate_range("2000-01-03", periods=3000)
    for i in range(10**6):
        close = 100 + np.arange(20.0)
        store.upsert(pd.DataFrame({
            "ticker": "AAA", "date": days[i % 2980 : i % 2980 + 20], "open": close, "high": close + 1,
            "low": close - 1, "close": close, "adj_close": close, "volume": 1000.0,
        }))
"""

UPSERTS = """
import sys, time
from pathlib import Path
import pandas as pd
from forecaster.data import PriceStore
root, days, parity, go = sys.argv[1], pd.read_parquet(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
store = PriceStore(root)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for i in range(parity, len(days), 2):
    store.upsert(days.iloc[[i]])
"""


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def race(
    script: str, argsets: list[list[str]], folder: Path
) -> tuple[list[subprocess.Popen], list[str], float]:
    """Start one process per argument set, let them all import, then release them together."""
    go = folder / f"go-{uuid.uuid4().hex}"
    children = [spawn(script, *args, str(go)) for args in argsets]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(child.stderr.read())
    start = time.perf_counter()
    go.touch()
    errors = [child.communicate(timeout=300)[1] for child in children]
    return children, errors, time.perf_counter() - start


def error_kind(stderr: str) -> str:
    """The database error's class (e.g. UniqueViolation), else the exception's."""
    driver = re.findall(r"\(psycopg\.errors\.(\w+)\)", stderr)
    if driver:
        return driver[-1]
    raised = re.findall(r"^([\w.]+(?:Error|Exception)):", stderr, re.MULTILINE)
    return raised[-1].rsplit(".", 1)[-1] if raised else "?"


def fresh_database() -> tuple[str, callable]:
    import psycopg

    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    name = f"fcm_chaos_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def first_start(trials: int, processes: int, folder: Path) -> None:
    print(f"\n1. first start: {processes} processes on a fresh PostgreSQL database, {trials} trials")
    for mode in ("create_all", "connect"):
        failed_trials, kinds, seconds = 0, Counter(), []
        for _ in range(trials):
            url, drop = fresh_database()
            try:
                children, errors, elapsed = race(FIRST_START, [[mode, url]] * processes, folder)
            finally:
                drop()
            failures = [error_kind(e) for c, e in zip(children, errors, strict=True) if c.returncode != 0]
            failed_trials += bool(failures)
            kinds.update(failures)
            seconds.append(elapsed)
        label = "before (create_all)" if mode == "create_all" else "after (connect)"
        print(
            f"   {label:20s} trials with a failed process: {failed_trials}/{trials}; "
            f"failed processes: {sum(kinds.values())}/{trials * processes} {dict(kinds) or ''}; "
            f"all done in median {np.median(seconds):.2f} s, max {max(seconds):.2f} s"
        )


def kill_nine(trials: int, folder: Path) -> None:
    print(f"\n2. kill -9 during a job (heartbeat 0.2 s, stale after 1 s), {trials} trials")
    url = f"sqlite:///{folder / 'kill.db'}"
    engine = forecast_store.connect(url)
    interrupted = readable = tmp_left = tmp_removed = 0
    for _ in range(trials):
        root = folder / f"prices-{uuid.uuid4().hex[:6]}"
        job = spawn(KILLED_JOB, url, str(root))
        run_id = int(job.stdout.readline())
        time.sleep(random.uniform(0.3, 1.5))
        job.send_signal(signal.SIGKILL)
        job.wait()
        time.sleep(1.2)
        with forecast_store.record_run(engine, "next", stale_after_s=1.0):
            pass
        status = next(r["status"] for r in forecast_store.recent_runs(engine, 100) if r["id"] == run_id)
        interrupted += status == "interrupted"
        store = PriceStore(root)
        try:
            readable += len(store.read("AAA")) > 0
        except Exception as exc:  # a corrupted file would show here
            print(f"   unreadable price file: {exc}")
        tmp_left += len(list(root.glob(".*.tmp")))
        tmp_removed += len(store.remove_orphans(max_age=timedelta(0)))  # as the next start does after 10 min
    engine.dispose()
    print(
        f"   runs marked interrupted at the next start: {interrupted}/{trials}; readable price files: "
        f"{readable}/{trials}; temporary files left by the kills: {tmp_left}, removed: {tmp_removed}"
    )


def concurrent_upserts(trials: int, folder: Path) -> None:
    days = 60
    print(f"\n3. two processes upserting disjoint days of one ticker ({days} days), {trials} trials")
    close = 100.0 + np.arange(days)
    bars = pd.DataFrame(
        {
            "ticker": "AAA",
            "date": pd.bdate_range("2020-01-02", periods=days).astype("datetime64[us]"),
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "adj_close": close,
            "volume": 1000.0,
        }
    )
    source = folder / "days.parquet"
    bars.to_parquet(source)
    lost, seconds = [], []
    for _ in range(trials):
        root = folder / f"upserts-{uuid.uuid4().hex[:6]}"
        children, errors, elapsed = race(
            UPSERTS, [[str(root), str(source), "0"], [str(root), str(source), "1"]], folder
        )
        if any(c.returncode for c in children):
            raise RuntimeError("\n".join(errors))
        lost.append(days - len(PriceStore(root).read("AAA")))
        seconds.append(elapsed)
    print(f"   rows lost per trial: {lost} (total {sum(lost)}); median {np.median(seconds):.2f} s per trial")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"chaos_store: {os.cpu_count()} CPUs, PostgreSQL at {PG_ADMIN.rsplit('/', 1)[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        first_start(args.trials, args.processes, Path(tmp))
        kill_nine(args.trials, Path(tmp))
        concurrent_upserts(args.trials, Path(tmp))


if __name__ == "__main__":
    main()
