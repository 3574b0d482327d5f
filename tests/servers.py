"""Real servers for tests: a fresh PostgreSQL database and an `mlflow server` process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

PG_ADMIN = os.environ.get("FORECASTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fresh_postgres_database():
    """Create a uniquely named database on the machine's PostgreSQL; drop it afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    name = f"fcm_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def wait_http(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def process(command: list[str], log: Path, env: dict | None = None, ready_url: str | None = None):
    """A background process (its own session), stopped with its children at the end, also on failure."""
    with open(log, "a") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        if ready_url:
            wait_http(ready_url, proc, timeout=180, log=log)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()


def mlflow_command(backend_uri: str, artifacts: Path, port: int) -> list[str]:
    """`mlflow server` on a loopback port with its artifacts proxied (clients never touch the folder)."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts),
        "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path, port: int | None = None):
    """A running `mlflow server` (on a free port by default); yields its URL."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with process(mlflow_command(backend_uri, artifacts, port), log, ready_url=f"{url}/health"):
        yield url
