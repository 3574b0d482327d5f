"""Chaos drill for Ray: kill a worker node (SIGKILL of its raylet and workers) in the middle of
a backtest, a batch forecast and a tune run, and kill the batch job's driver; check each result.

Usage:
    python benchmarks/chaos_ray.py                          # every scenario, about 5 minutes on 2 cores
    python benchmarks/chaos_ray.py --scenarios backtest batch --json out.json

A Ray cluster of three nodes runs on this machine (`ray.cluster_utils.Cluster`, as Ray's own
fault-tolerance tests do): a head with no CPUs (the driver's node: it holds the object store's
copies of the shared inputs and is never killed) and two worker nodes of one CPU each. Each
scenario runs once undisturbed and once with a worker node killed as soon as a task (or actor)
of the scenario is running on it (seen through Ray's state API), then a replacement node joins
for the next scenario, as an autoscaler would add one. Printed per scenario: whether the node
was killed mid-work, the attempts Ray retried, the wall times, and whether the disturbed result
equals the undisturbed one (forecast rows, stored rows, best trial). The driver scenario kills
`pipelines.batch_forecast` itself (kill -9) while its actors work, then reruns it: the store
must hold no row of the killed run and exactly one copy of every row after the rerun.
The closing figures of issue 22 came from a plain run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ENV = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
os.environ["PYTHONPATH"] = ENV["PYTHONPATH"]  # Ray's workers import forecaster from this checkout

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig  # noqa: E402

SCENARIOS = ("backtest", "batch", "tune", "driver")
HORIZON = 3
CONFIG = ForecasterConfig(
    window=WindowConfig(window=20, horizon=HORIZON),
    cluster=ClusterConfig(n_clusters=2),
    expert=ExpertConfig(hidden_size=16),
    train=TrainConfig(epochs=3, batch_size=64, device="cpu", fine_tune_epochs=1),
)
# Fast failure detection: a node is declared dead after ~2 missed 1 s health checks (default ~15 s).
HEAD = {
    "num_cpus": 0,
    "include_dashboard": True,  # the state API (which task ran where, and its attempts)
    "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 2},
}


def synthetic_bars(tickers: int, days: int, seed: int = 0) -> pd.DataFrame:
    """Random-walk OHLCV bars on NYSE sessions from 2010 (heavier tails in a calm/volatile mix)."""
    dates = pd.bdate_range("2010-01-04", periods=days + 40, freq="C", holidays=_nyse_holidays())[:days]
    rng, frames = np.random.default_rng(seed), []
    for i in range(tickers):
        vol = np.where(np.arange(days) % 300 < 150, 0.008, 0.02) * (1 + 0.1 * i % 3)
        close = 50 * np.exp(np.cumsum(rng.standard_t(5, days) * vol / np.sqrt(5 / 3)))
        frames.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "ticker": f"T{i:03d}",
                    "open": close,
                    "high": close * 1.005,
                    "low": close * 0.995,
                    "close": close,
                    "adj_close": close,
                    "volume": 1e6,
                }  # fmt: skip
            )
        )
    return pd.concat(frames, ignore_index=True)


def _nyse_holidays():
    import exchange_calendars as xcals

    return list(xcals.get_calendar("XNYS").regular_holidays.holidays(start="2010-01-01", end="2016-12-31"))


class Drill:
    """The three-node cluster, and the kill of a worker node once the scenario works on it."""

    def __init__(self):
        import ray
        from ray.cluster_utils import Cluster

        started = time.perf_counter()
        self.cluster = Cluster(initialize_head=True, head_node_args=HEAD)
        self.workers = [self.cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=self.cluster.address, log_to_driver=False, logging_level="ERROR")
        print(f"cluster: head + 2 worker nodes up in {time.perf_counter() - started:.1f} s", flush=True)

    def kill_when_busy(self, kind: str, match: str, timeout: float = 300, settle: float = 1.0) -> dict:
        """Wait until a task or actor whose name contains `match` runs on a worker node, then kill that node."""
        from ray.util.state import list_actors, list_tasks

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = list_tasks(filters=[("state", "=", "RUNNING")], detail=True, raise_on_missing_output=False) \
                if kind == "task" else list_actors(filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False)  # fmt: skip
            names = [
                (getattr(x, "name", "") or getattr(x, "class_name", "") or "", x.node_id) for x in listed
            ]
            busy = {node for name, node in names if match in name}
            victims = [n for n in self.workers if n.node_id in busy]
            if victims:
                time.sleep(settle)  # into the work, not at its first instruction
                victim = victims[0]
                self.cluster.remove_node(victim, allow_graceful=False)
                self.workers.remove(victim)
                return {"killed": True, "at": time.monotonic(), "node": victim.node_id[:8]}
            time.sleep(0.2)
        return {"killed": False, "at": time.monotonic(), "node": None}

    def replace_node(self) -> None:
        self.workers.append(self.cluster.add_node(num_cpus=1))

    def retried(self, match: str) -> int:
        """Attempts of tasks named like `match` beyond each task's first (Ray's retries)."""
        from ray.util.state import list_tasks

        tasks = list_tasks(detail=True, limit=10_000, raise_on_missing_output=False)
        return sum(1 for t in tasks if match in (t.name or "") and t.attempt_number > 0)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()


def disturbed(drill: Drill, job, kind: str, match: str) -> tuple[object, dict]:
    """Run `job()` while a watcher kills the node it first works on; (its result, what happened)."""
    kill: dict = {}
    watcher = threading.Thread(target=lambda: kill.update(drill.kill_when_busy(kind, match)), daemon=True)
    started = time.monotonic()
    watcher.start()
    result = job()
    ended = time.monotonic()
    watcher.join(timeout=5)
    kill.setdefault("killed", False)
    kill["mid_work"] = bool(kill["killed"] and kill["at"] < ended)
    kill["seconds"] = ended - started
    return result, kill


def timed(job):
    started = time.monotonic()
    return job(), time.monotonic() - started


def scenario_backtest(drill: Drill, bars: pd.DataFrame) -> dict:
    from forecaster.evaluation.backtest import walk_forward

    def job():
        # Enough epochs that a fit takes seconds: the node must die while one runs.
        config = CONFIG.with_(train={"epochs": 12}, expert={"hidden_size": 32})
        return walk_forward(bars, config, start="2012-06-01", end="2013-06-01", refit_every=125,
                            models=["ewma", "fuzzy"], engine="ray")  # fmt: skip

    calm, calm_s = timed(job)
    hit, kill = disturbed(drill, job, "task", "run_fold_task")
    same = calm.forecasts.reset_index(drop=True).equals(hit.forecasts.reset_index(drop=True))
    return {**kill, "calm_seconds": calm_s, "retried": drill.retried("run_fold_task"), "same_result": same,
            "rows": len(hit.forecasts)}  # fmt: skip


def _home_with_champion(root: Path, bars: pd.DataFrame) -> Path:
    """A data folder: the bars in its price store, a tiny champion in its SQLite MLflow."""
    from forecaster import tracking
    from forecaster.config import Settings
    from forecaster.data import PriceStore
    from forecaster.model import FuzzyLSTMForecaster

    home = root / "home"
    PriceStore(home / "prices").write(bars)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    settings = Settings(home=home)
    train = bars[bars["ticker"].isin(sorted(bars["ticker"].unique())[:2])]
    model = FuzzyLSTMForecaster(CONFIG.with_(train={"epochs": 1, "fine_tune_epochs": 0})).fit(
        train, progress=False
    )
    tracking.log_training_run(model, train, settings)
    assert tracking.promote(settings, train).promoted
    return home


def _stored(url: str) -> list[str]:
    import sqlalchemy as sa

    from forecaster import forecast_store

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = (
            conn.execute(sa.select(forecast_store.forecasts).order_by("ticker", "horizon")).mappings().all()
        )
    engine.dispose()
    return [
        json.dumps({k: v for k, v in r.items() if k not in ("id", "created_at")}, default=str) for r in rows
    ]


def scenario_batch(drill: Drill, bars: pd.DataFrame, root: Path) -> dict:
    from forecaster.config import Settings
    from pipelines import batch_forecast

    home, tickers = _home_with_champion(root, bars), sorted(bars["ticker"].unique())

    def job(name):
        url = f"sqlite:///{root / name}.db"
        settings = Settings(
            home=home, universe=tickers, forecast_store_url=url, engine="ray", batch_shard_size=2
        )
        return batch_forecast.run(settings), url

    (calm, calm_url), calm_s = timed(lambda: job("calm"))
    (hit, hit_url), kill = disturbed(drill, lambda: job("hit"), "actor", "MapWorker")
    (again, _), _ = timed(lambda: job("hit"))
    return {**kill, "calm_seconds": calm_s, "rows_written": hit.rows_written, "expected_rows": len(tickers) * HORIZON,
            "rerun_rows_written": again.rows_written, "same_result": _stored(calm_url) == _stored(hit_url)}  # fmt: skip


def scenario_tune(drill: Drill, bars: pd.DataFrame, root: Path) -> dict:
    from forecaster.scale.tuning import search

    space = {"n_clusters": [2], "m": (1.8, 2.2), "hidden_size": [8, 16], "lr": (1e-3, 3e-3), "window": [20],
             "head": ["quantile"]}  # fmt: skip

    def job(name):
        result = search(bars, CONFIG, trials=2, space=space, storage=root / name, seed=3)
        if result.best is None:
            return None
        # A trial lost for good (no retry) drops out of `trials`: count them, not just the winner.
        return len(result.trials), result.best.params, round(result.best.metrics["val_pinball"], 12)

    calm, calm_s = timed(lambda: job("calm"))
    hit, kill = disturbed(drill, lambda: job("hit"), "actor", "ImplicitFunc")
    return {**kill, "calm_seconds": calm_s, "best": str(hit), "same_result": calm == hit and hit is not None}


def scenario_driver(drill: Drill, bars: pd.DataFrame, root: Path) -> dict:
    """kill -9 of the batch job's driver while its actors work, then the rerun."""
    home, tickers = root / "home", sorted(bars["ticker"].unique())  # the batch scenario's folder
    if not home.exists():
        home = _home_with_champion(root, bars)
    url = f"sqlite:///{root / 'driver'}.db"
    env = ENV | {"FORECASTER_HOME": str(home), "FORECASTER_UNIVERSE": json.dumps(tickers), "RAY_ADDRESS": drill.cluster.address,
                 "FORECASTER_FORECAST_STORE_URL": url, "FORECASTER_BATCH_SHARD_SIZE": "2", "FORECASTER_JOB_STALE_AFTER_S": "1"}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "pipelines.batch_forecast", "--engine", "ray"]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    _wait_for_actor(child)
    child.send_signal(signal.SIGKILL)
    killed = child.wait() == -signal.SIGKILL  # not an exit of its own just before the signal
    left = len(_stored(url)) if Path(root / "driver.db").exists() else 0
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    after = _stored(url)
    runs = _job_statuses(url)
    return {"killed": killed, "mid_work": killed, "rows_after_kill": left, "rerun_exit": rerun.returncode,
            "rows_after_rerun": len(after), "expected_rows": len(tickers) * HORIZON,
            "duplicates": len(after) - len(set(after)), "job_runs": runs, "same_result": left == 0 and len(after) == len(set(after)) == len(tickers) * HORIZON}  # fmt: skip


def _job_statuses(url: str) -> list[str]:
    """The statuses of the store's job runs, oldest first (the killed run is marked `interrupted`)."""
    import sqlalchemy as sa

    from forecaster import forecast_store

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        runs = forecast_store.job_runs
        statuses = conn.execute(sa.select(runs.c.status).order_by(runs.c.id)).scalars().all()
    engine.dispose()
    return list(statuses)


def _wait_for_actor(child: subprocess.Popen, timeout: float = 300) -> bool:
    """True once an actor of the child's Ray Data map is alive (its driver is then mid-job)."""
    from ray.util.state import list_actors

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        alive = list_actors(filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False)
        if any("MapWorker" in (a.class_name or "") for a in alive):
            return child.poll() is None  # kill now: forecasting a shard takes milliseconds
        time.sleep(0.2)
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--tickers", type=int, default=40, help="synthetic tickers of the batch scenarios")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    two = synthetic_bars(3, 900)
    many = synthetic_bars(args.tickers, 400, seed=1)
    drill, figures = Drill(), {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.scenarios:
                what = (
                    "kill -9 of its driver, then a rerun"
                    if name == "driver"
                    else "undisturbed, then a worker node killed"
                )
                print(f"{name}: {what} ...", flush=True)
                run = {"backtest": lambda: scenario_backtest(drill, two),
                       "batch": lambda: scenario_batch(drill, many, Path(tmp)),
                       "tune": lambda: scenario_tune(drill, two, Path(tmp)),
                       "driver": lambda: scenario_driver(drill, many, Path(tmp))}[name]  # fmt: skip
                figures[name] = {k: v for k, v in run().items() if k != "at"}
                print(f"{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures[name].items()), flush=True)
                if figures[name].get("killed") and name != "driver":
                    drill.replace_node()
    finally:
        drill.shutdown()
    ok = all(f["mid_work"] and f["same_result"] for f in figures.values())
    print(f"{'PASS' if ok else 'FAIL'}: {sum(f['same_result'] for f in figures.values())} of {len(figures)} "
          "scenarios gave the undisturbed result after losing a worker node (or the driver)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0 if ok else 1


def _fmt(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
