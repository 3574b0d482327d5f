"""The command line and the jobs fail in one line, fast, and never show a credential.

Every verb runs as a real subprocess against a port where nothing listens (MLflow or
PostgreSQL), with a password planted in the URI; stdout, stderr (the log) and the SQLite
forecast store are searched for it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Pl4nted-s3cret"


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORECASTER_"))}
    return env | {"FORECASTER_HOME": str(home), "PYTHONPATH": str(REPO), "COLUMNS": "200", **extra}


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen, timeout: float = 200) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"{process.args[2:]} still running after {timeout} s:\n{err[-2000:]}")
    return process.returncode, out, err


def test_a_password_in_the_tracking_uri_reaches_no_output_log_or_store(tmp_path):
    home = tmp_path / "home"
    uri = f"http://u:{PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens there
    env = environment(home, MLFLOW_TRACKING_URI=uri)
    started = time.monotonic()
    models = start(["forecaster.cli", "models"], env)  # MLflow's own retry defaults: minutes
    promote = start(["forecaster.cli", "promote"], env)
    # Verbose JSON logs: MLflow's records, the traceback and exc_info go through the log filter.
    batch = start(
        ["forecaster.cli", "batch-forecast"],
        env | {"FORECASTER_VERBOSE": "1", "FORECASTER_LOG_FORMAT": "json"},
    )
    code, out, err = finish(models)
    assert time.monotonic() - started < 90, "a dead tracking server kept `models` waiting"
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot reach MLflow at http://u:***@127.0.0.1:{uri.rsplit(':', 1)[1]}")
    assert "(MLFLOW_TRACKING_URI): connection refused, after 2 retries" in err
    outputs = [out, err]
    for process in (promote, batch):
        code, out, err = finish(process)
        assert code != 0 and "error: cannot reach MLflow at http://u:***@" in err, err[-2000:]
        outputs += [out, err]
    assert "Traceback" in outputs[-1]  # the verbose run showed it, masked
    code, out, err = finish(start(["forecaster.cli", "runs"], env))
    assert code == 0 and "u:***@127.0.0.1" in out, out + err
    outputs += [out, err]
    for text in outputs:
        assert PASSWORD not in text
    assert PASSWORD.encode() not in (home / "forecasts.db").read_bytes()
    with sqlite3.connect(home / "forecasts.db") as db:
        [(status, error)] = db.execute("select status, error from job_runs").fetchall()
    assert status == "failed" and "u:***@127.0.0.1" in error


def test_an_unreachable_postgresql_store_is_one_line_naming_it(tmp_path):
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/x"
    env = environment(tmp_path / "home", FORECASTER_FORECAST_STORE_URL=url)
    masked = url.replace(PASSWORD, "***")
    for args in (["pipelines.batch_forecast"], ["forecaster.cli", "runs"]):
        code, out, err = finish(start(args, env))
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"error: forecast store {masked} (FORECASTER_FORECAST_STORE_URL): "), err
        assert "Connection refused" in err and PASSWORD not in err


def test_serve_on_a_read_only_home_says_so_in_one_line(tmp_path):
    if not any(Path(d, "unshare").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("unshare (util-linux) is not installed")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    flags = "-m" if os.geteuid() == 0 else "-rm"
    script = (
        'mount -t tmpfs -o size=1m tmpfs "$MNT" && mkdir "$MNT/home" && mount -o remount,ro "$MNT" || exit 77\n'
        f'exec "$PY" -m forecaster.cli serve --port {free_port()}'
    )
    env = environment(mnt / "home", MNT=str(mnt), PY=sys.executable)
    done = subprocess.run(
        ["unshare", flags, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=200
    )
    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a read-only tmpfs in a private namespace here: {done.stderr.strip()}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (
        done.stderr == f"forecaster serve: cannot serve: cannot write to {mnt}/home: read-only file system\n"
    )


@pytest.mark.parametrize("fmt", ["plain", "json", "rich"])
def test_every_log_handler_masks_the_message_its_arguments_and_the_exception(fmt, capsys):
    import logging

    from forecaster.runtime.logs import stderr_handler

    logger = logging.getLogger(f"test.hardening.{fmt}")
    logger.handlers, logger.propagate = [stderr_handler(fmt)], False
    try:
        raise RuntimeError(f"API request to http://u:{PASSWORD}@mlflow:5000/api failed")
    except RuntimeError:
        logger.exception("store %s: password=%s", f"postgresql://a:{PASSWORD}@db/x", PASSWORD)
    logger.warning("unformattable %s %s", f"http://b:{PASSWORD}@h")  # one argument short
    err = capsys.readouterr().err
    assert PASSWORD not in err and "postgresql://a:***@db/x: password=***" in err, err
    assert "http://u:***@mlflow:5000/api" in err and "RuntimeError" in err and "b:***@h" in err
