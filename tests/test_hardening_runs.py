"""MLflow runs whose process was killed are marked KILLED at the next start, live ones are not.

A real tracking store (SQLite file); the killed run is started by a real child process that
SIGKILLs itself inside the run, as a job killed during registration would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from forecaster.config import Settings
from forecaster.tracking.runs import end_killed_runs, start_run
from forecaster.tracking.setup import configure

REPO = Path(__file__).resolve().parents[1]

KILLED_INSIDE_A_RUN = """
import os, signal, sys
from forecaster.config import Settings
from forecaster.tracking.runs import start_run
from forecaster.tracking.setup import configure
configure(Settings(home=sys.argv[1]))
with start_run("killed") as run:
    print(run.info.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FORECASTER_MLFLOW_URI", raising=False)
    settings = Settings(home=tmp_path / "home")
    configure(settings)
    yield settings
    while mlflow.active_run():
        mlflow.end_run()


def status(run_id: str) -> str:
    return mlflow.MlflowClient().get_run(run_id).info.status


def test_a_run_whose_process_was_killed_is_marked_killed_and_a_live_one_is_left(settings):
    env = os.environ | {"PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_INSIDE_A_RUN, str(settings.home)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    dead = child.stdout.strip()
    with start_run("alive") as alive:  # this process: still running
        assert status(dead) == status(alive.info.run_id) == "RUNNING"
        assert end_killed_runs(settings, min_age_s=60) == []  # too young to judge
        assert end_killed_runs(settings, min_age_s=0) == [dead]
        assert status(dead) == "KILLED" and status(alive.info.run_id) == "RUNNING"
        assert end_killed_runs(settings, min_age_s=0) == []  # marked once
    assert status(alive.info.run_id) == "FINISHED"


def test_an_untagged_run_of_unknown_process_is_marked_only_when_old(settings):
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(settings.experiment).experiment_id
    young = client.create_run(experiment).info.run_id  # no process tags: can't tell if alive
    assert end_killed_runs(settings, min_age_s=0) == [] and status(young) == "RUNNING"
    old = client.create_run(experiment, start_time=1_000).info.run_id  # started in 1970
    assert end_killed_runs(settings, min_age_s=0) == [old]
    assert status(old) == "KILLED" and status(young) == "RUNNING"
