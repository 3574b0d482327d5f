"""The engine switch: local starts no Ray; Ray runs the same work with the same results."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from forecaster.config import Settings
from forecaster.evaluation.backtest import walk_forward
from forecaster.runtime.engine import RateLimit, check_engine, map_tasks, shards

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("naive", "drift", "ewma", "equal_weight", "fuzzy", "fuzzy_aci")


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = os.environ | {"PYTHONPATH": str(ROOT)} | env
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=environment, timeout=300, cwd=ROOT,
    )  # fmt: skip


def test_the_local_engine_never_imports_ray():
    done = run_python(
        """
        import sys
        sys.path.insert(0, "tests")
        import pandas as pd
        from conftest import random_walk_bars
        from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, Settings, TrainConfig, WindowConfig
        from forecaster.runtime.engine import map_tasks, use_engine
        from forecaster.evaluation.backtest import walk_forward
        import forecaster.cli, pipelines.batch_forecast, pipelines.ingest, pipelines.train

        assert use_engine(Settings()) == "local"
        config = ForecasterConfig(
            window=WindowConfig(window=10, horizon=3), cluster=ClusterConfig(n_clusters=2),
            expert=ExpertConfig(hidden_size=8), train=TrainConfig(epochs=1, device="cpu", fine_tune_epochs=0),
        )
        bars = pd.concat([random_walk_bars(200, "AAA", seed=1), random_walk_bars(200, "BBB", seed=2)])
        walk_forward(bars, config, start="2010-06-01", refit_every=60, models=["naive", "fuzzy"])
        assert map_tasks(abs, [-1, 2]) == [1, 2]
        print("ray" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_an_unknown_engine_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match=r"FORECASTER_ENGINE / --engine.*'spark'"):
        check_engine("spark")
    with pytest.raises(ValueError, match="engine"):
        Settings(engine="spark")


def test_ray_missing_is_one_clear_error_naming_the_setting():
    done = run_python(
        """
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        from forecaster.runtime.engine import EngineUnavailable, map_tasks
        try:
            map_tasks(abs, [1], "ray")
        except EngineUnavailable as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("FORECASTER_ENGINE=ray (--engine ray) needs Ray, which is not installed")


def test_an_unreachable_cluster_is_one_clear_error_naming_ray_address():
    done = run_python(
        """
        from forecaster.config import Settings
        from forecaster.runtime.engine import EngineUnavailable, use_engine
        try:
            use_engine(Settings(engine="ray"))
        except EngineUnavailable as exc:
            print(exc)
        """,
        RAY_ADDRESS="127.0.0.1:1",  # nothing listens there
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "FORECASTER_ENGINE=ray: cannot start or attach to the Ray cluster at RAY_ADDRESS=127.0.0.1:1"
    )


def test_shards_are_contiguous_nearly_equal_and_never_empty():
    assert shards(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert shards(["a"], 4) == [["a"]]


def test_map_tasks_on_ray_returns_results_in_order(ray_runtime):
    items = [list("abc"), list("de"), list("f")]
    assert map_tasks(shards, items, "ray", shared={"n": 2}) == [shards(i, 2) for i in items]


def test_one_rate_limit_holds_across_ray_workers(ray_runtime):
    limit = RateLimit(per_second=20, engine="ray")
    map_tasks(RateLimit.wait, [limit], "ray")  # workers up and the clock started
    started = time.perf_counter()
    map_tasks(RateLimit.wait, [limit] * 20, "ray")  # 20 tasks on 2 workers, each waits once
    assert limit.granted() == 21
    # 20 more slots 1/20 s apart, whichever worker asked: at least 20/20 s in all.
    assert time.perf_counter() - started >= 0.95


def test_backtest_on_ray_equals_the_local_backtest(ray_runtime, tiny_config, two_ticker_bars):
    kwargs = dict(start="2010-09-01", refit_every=40, models=MODELS)
    local = walk_forward(two_ticker_bars, tiny_config, **kwargs)
    distributed = walk_forward(two_ticker_bars, tiny_config, engine="ray", **kwargs)

    assert len(local.folds) >= 3 and set(local.forecasts["model"]) == set(MODELS)
    pd.testing.assert_frame_equal(distributed.forecasts, local.forecasts)
    pd.testing.assert_frame_equal(distributed.memberships, local.memberships)
    seconds = [c for c in local.folds.columns if c.endswith("_seconds")]
    pd.testing.assert_frame_equal(distributed.folds.drop(columns=seconds), local.folds.drop(columns=seconds))


def test_ray_tasks_are_reported_as_they_finish_with_an_eta(ray_runtime, caplog):
    nap = lambda seconds: time.sleep(seconds) or seconds  # noqa: E731  (a lambda travels by value)
    caplog.set_level("INFO", logger="forecaster.runtime.progress")
    assert map_tasks(nap, [3.0, 0.1], "ray", desc="naps") == [3.0, 0.1]
    ended = time.time()
    lines = {r.getMessage().split(" (")[0]: r.created for r in caplog.records if r.name.endswith("progress")}
    assert "naps: 1/2 tasks" in lines and "naps: 2/2 tasks" in lines, lines
    # The short task is reported when it ends, not when the long one does.
    assert ended - lines["naps: 1/2 tasks"] > 1.5
    assert any("ETA" in r.getMessage() for r in caplog.records)


def test_warm_backtest_on_ray_equals_the_local_one(ray_runtime, tiny_config, two_ticker_bars):
    # Each warm LSTM competitor's chain of folds is one Ray task, the baselines one task per fold.
    kwargs = dict(start="2010-09-01", refit_every=40, models=["naive", "fuzzy", "single_lstm"], refit="warm")
    local = walk_forward(two_ticker_bars, tiny_config, **kwargs)
    distributed = walk_forward(two_ticker_bars, tiny_config, engine="ray", **kwargs)

    assert len(local.folds) >= 3
    pd.testing.assert_frame_equal(distributed.forecasts, local.forecasts)
    pd.testing.assert_frame_equal(distributed.memberships, local.memberships)
