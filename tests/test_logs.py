"""One logging set-up: JSON lines on request, rounded numbers, and progress lines without a terminal."""

import json
import os
import subprocess
import sys

import pytest

from forecaster.runtime.logs import round_numbers


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with stdout and stderr piped (no terminal)."""
    environ = {**os.environ, "FORECASTER_VERBOSE": "0", **env}
    environ.pop("FORECASTER_LOG_FORMAT", None) if "FORECASTER_LOG_FORMAT" not in env else None
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=300
    )


def test_long_floats_in_messages_are_rounded():
    assert round_numbers("{'fpc': 0.43883557224151015, 'n': 3}") == "{'fpc': 0.4388, 'n': 3}"
    assert (
        round_numbers("loss 1630.1234567 at 08:24:30.123456, v2.0.1")
        == "loss 1630 at 08:24:30.123456, v2.0.1"
    )


def test_json_format_writes_one_parseable_object_per_line():
    code = (
        "import logging, warnings\n"
        "from forecaster.runtime.logs import setup_logging\n"
        "setup_logging()\n"
        "logging.getLogger('forecaster.regimes.fcm').info('diagnostics %s', {'fpc': 0.43883557224151015})\n"
        "logging.getLogger('mlflow.store.db.utils').info('Creating initial MLflow database tables...')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    logging.getLogger('x').exception('failed')\n"
    )
    result = run_python(code, FORECASTER_LOG_FORMAT="json")
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["message"] for r in lines] == ["diagnostics {'fpc': 0.4388}", "failed"]
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "forecaster.regimes.fcm"
    assert lines[0]["time"].endswith("+00:00") and "ZeroDivisionError" in lines[1]["exc_info"]


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    from conftest import random_walk_bars

    path = tmp_path_factory.mktemp("bars") / "AAA.csv"
    bars = random_walk_bars(400, "AAA", seed=1).drop(columns="ticker")
    bars.rename(columns={"date": "Date", "adj_close": "Adj Close"}).rename(columns=str.title).to_csv(
        path, index=False
    )
    return path


def test_training_without_a_terminal_logs_progress_lines(tiny_csv, tmp_path):
    code = (
        "from forecaster.cli.main import app\n"
        f"app(['train', '--source', {str(tiny_csv)!r}, '-o', {str(tmp_path / 'm')!r}, '--epochs', '2',"
        " '--window', '10', '--horizon', '3', '--clusters', '2', '--hidden', '8', '--batch-size', '64',"
        " '--device', 'cpu', '--no-plots'], prog_name='forecaster')\n"
    )
    result = run_python(code, FORECASTER_PROGRESS_INTERVAL_S="0")
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if "forecaster.runtime.progress" in line]
    assert progress, result.stderr
    assert any("epoch 2" in line and "loss" in line and "ETA" in line for line in progress), progress
    assert all(" INFO " in line for line in progress)  # plain lines, not a live bar


def test_a_script_fit_shows_progress_on_stderr_unless_quiet():
    # A script with no logging set up and no terminal: the case that used to train in silence.
    code = (
        "import sys\n"
        "from conftest import random_walk_bars\n"
        "from forecaster import FuzzyLSTMForecaster\n"
        "from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig,"
        " WindowConfig\n"
        "config = ForecasterConfig(window=WindowConfig(window=10, horizon=3),"
        " cluster=ClusterConfig(n_clusters=2), expert=ExpertConfig(hidden_size=8),"
        " train=TrainConfig(epochs=2, batch_size=64, device='cpu', fine_tune_epochs=1))\n"
        "bars = random_walk_bars(300, 'AAA', seed=1)\n"
        "FuzzyLSTMForecaster(config).fit(bars, verbose=False)\n"
        "FuzzyLSTMForecaster(config).fit(bars, progress=False)\n"
        "print('--- now with progress', file=sys.stderr, flush=True)\n"
        "FuzzyLSTMForecaster(config).fit(bars)\n"
    )
    result = run_python(code, FORECASTER_PROGRESS_INTERVAL_S="0", PYTHONPATH=os.pathsep.join(sys.path))
    assert result.returncode == 0, result.stderr
    quiet, _, shown = result.stderr.partition("--- now with progress")
    assert not [line for line in quiet.splitlines() if line.startswith(("experts:", "fine-tune:"))], quiet
    lines = shown.splitlines()
    assert any(line.startswith("experts: started") for line in lines), shown
    assert any(line.startswith("experts: ") and "epoch 2" in line and "ETA" in line for line in lines), shown
    assert any(line.startswith("fine-tune: done") for line in lines), shown
    assert "\r" not in shown  # plain lines, not a bar redrawn in place
