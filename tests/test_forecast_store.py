"""Forecast store schema, run heartbeats and lock fencing, on SQLite and the machine's PostgreSQL.

Processes are real processes (subprocess): the races fixed here are between processes.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from forecaster import forecast_store
from forecaster.forecast_store import LockLostError, SchemaVersionError, schema

REPO = Path(__file__).resolve().parents[1]


def python(script: str, *args: str) -> subprocess.Popen:
    """A child Python running `script` with this checkout's packages; stdout is a pipe."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# Imports everything, says "ready", waits for the go file, then connects: the processes race
# on the first connect to a fresh database, as `serve --workers 2` and the scheduler do.
CONNECT_ON_GO = """
import sys, time
from pathlib import Path
import alembic.command, alembic.runtime.migration
from forecaster import forecast_store
url, go = sys.argv[1], Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
forecast_store.connect(url).dispose()
"""


def test_eight_processes_connecting_to_a_fresh_store_at_once_all_succeed(store_url, tmp_path):
    go = tmp_path / "go"
    children = [python(CONNECT_ON_GO, store_url, str(go)) for _ in range(8)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        go.touch()
        errors = [child.communicate(timeout=120)[1] for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0] * 8, "\n".join(errors)
    engine = forecast_store.connect(store_url)
    with engine.connect() as conn:
        assert schema._revision(conn) == forecast_store.schema_head()
        versions = conn.execute(sa.text(f"SELECT version_num FROM {forecast_store.VERSION_TABLE}")).all()
    assert len(versions) == 1
    engine.dispose()


def test_a_connect_that_sees_a_half_created_schema_waits_for_its_creator(store_url):
    engine = schema._create_engine(store_url)
    connected: list = []
    with schema._schema_lock(engine) as creator:
        # The creator has made the tables but not yet recorded the version (on SQLite each DDL
        # statement commits on its own; on PostgreSQL a reader's catalog checks can straddle the commit).
        with engine.connect() as other:
            schema._alembic("upgrade", other, forecast_store.BASELINE)
            other.execute(sa.text(f"DROP TABLE {forecast_store.VERSION_TABLE}"))
            other.commit()
        waiter = threading.Thread(target=lambda: connected.append(forecast_store.connect(store_url)))
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive() and not connected  # waiting for the lock, not refusing the store
        schema._alembic("stamp", creator, forecast_store.BASELINE)
        schema._alembic("upgrade", creator, "head")
    waiter.join(30)
    assert len(connected) == 1
    connected[0].dispose()
    engine.dispose()


def test_the_migrated_schema_equals_the_tables_the_code_uses(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = forecast_store.connect(store_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                # The scheduler's table belongs to APScheduler, the version table to Alembic.
                "include_name": lambda name, kind, parent: (
                    kind != "table" or name not in ("scheduler_jobs", forecast_store.VERSION_TABLE)
                ),
            },
        )
        assert compare_metadata(context, forecast_store.metadata) == []
    engine.dispose()


def downgrade_to_baseline(url: str, versioned: bool) -> None:
    """The store as an older release left it: schema 0001, with or without a version table."""
    engine = schema._create_engine(url)
    with schema._schema_lock(engine) as conn:
        schema._alembic("downgrade", conn, forecast_store.BASELINE)
        if not versioned:  # made by `metadata.create_all` before migrations existed
            conn.execute(sa.text(f"DROP TABLE {forecast_store.VERSION_TABLE}"))
    engine.dispose()


@pytest.mark.parametrize("versioned", [True, False], ids=["0001", "pre-migration"])
def test_an_older_schema_is_refused_until_upgraded_explicitly(store_url, versioned):
    forecast_store.connect(store_url).dispose()
    downgrade_to_baseline(store_url, versioned)

    with pytest.raises(
        SchemaVersionError, match=r"schema revision 0001 is older than this code's 0005; .*upgrade"
    ):
        forecast_store.connect(store_url)
    assert forecast_store.upgrade(store_url) == ("0001", "0005")
    engine = forecast_store.connect(store_url)
    with forecast_store.record_run(engine, "ingest"):  # the new column is there
        pass
    assert forecast_store.upgrade(store_url) == ("0005", "0005")  # a second upgrade changes nothing
    engine.dispose()


def test_upgrading_a_0002_store_keeps_its_forecasts_and_adds_quantiles_regimes_and_aci_state(store_url):
    forecast_store.connect(store_url).dispose()
    engine = schema._create_engine(store_url)
    with schema._schema_lock(engine) as conn:
        schema._alembic("downgrade", conn, "0002")
    row = {"ticker": "AAA", "as_of": dt.date(2024, 1, 2), "horizon": 1, "target_date": dt.date(2024, 1, 3),
           "last_price": 100.0, "forecast": 101.0, "model_name": "fcm-lstm", "model_version": "1",
           "created_at": dt.datetime(2024, 1, 2, 22)}  # fmt: skip
    columns = ", ".join(row)
    insert = sa.text(f"INSERT INTO forecasts ({columns}) VALUES ({', '.join(':' + c for c in row)})")
    with engine.begin() as conn:
        conn.execute(insert, row)
        with pytest.raises(sa.exc.IntegrityError, match="ck_forecasts_positive"):  # the downgrade kept it
            with conn.begin_nested():
                conn.execute(insert, {**row, "ticker": "BBB", "forecast": -1.0})
    engine.dispose()

    assert forecast_store.upgrade(store_url) == ("0002", "0005")
    engine = forecast_store.connect(store_url)
    (stored,) = forecast_store.latest_forecasts(engine, "AAA")
    assert stored["forecast"] == 101.0 and stored["quantiles"] is None and stored["regime_shift"] is None
    assert forecast_store.load_aci_state(engine, "fcm-lstm") == []
    engine.dispose()


def test_a_newer_schema_is_refused_by_connect_and_upgrade(store_url):
    engine = forecast_store.connect(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {forecast_store.VERSION_TABLE} SET version_num = '0099'"))
    engine.dispose()
    newer = r"schema revision 0099 is newer than this code's 0005"
    with pytest.raises(SchemaVersionError, match=newer):
        forecast_store.connect(store_url)
    with pytest.raises(SchemaVersionError, match=newer):
        forecast_store.upgrade(store_url)


def test_upgrade_command_migrates_and_says_what_it_did(store_url):
    done = subprocess.run(
        [sys.executable, "-m", "forecaster.forecast_store", "upgrade", store_url],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": schema empty -> 0005")


# ---- heartbeats --------------------------------------------------------------------------

# A job that records its run with a fast heartbeat, prints the run id, and then works forever.
RUNNING_JOB = """
import sys, time
from forecaster import forecast_store
engine = forecast_store.connect(sys.argv[1])
with forecast_store.record_run(engine, "ingest", heartbeat_s=0.2) as record:
    print(record.id, flush=True)
    time.sleep(600)
"""


def run_row(engine, run_id: int) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.select(forecast_store.job_runs).where(forecast_store.job_runs.c.id == run_id))
            .one()
            ._mapping
        )


def test_a_job_killed_with_sigkill_is_marked_interrupted_at_the_next_start(store_url):
    engine = forecast_store.connect(store_url)
    job = python(RUNNING_JOB, store_url)
    try:
        run_id = int(job.stdout.readline())
        time.sleep(3)
        alive = run_row(engine, run_id)
        assert alive["status"] == "running" and alive["heartbeat_at"] > alive["started_at"]
        # A job starting now leaves a run with a fresh heartbeat alone, though it started long ago
        # (2 s leaves room for a heartbeat late on a busy machine).
        with forecast_store.record_run(engine, "batch_forecast", stale_after_s=2.0):
            pass
        assert run_row(engine, run_id)["status"] == "running"

        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        job.kill()
    last_beat = run_row(engine, run_id)["heartbeat_at"]
    time.sleep(2.2)
    with forecast_store.record_run(engine, "batch_forecast", stale_after_s=2.0):
        pass

    killed = run_row(engine, run_id)
    assert killed["status"] == "interrupted"
    assert killed["finished_at"] == last_beat  # the last time it was known alive
    assert "no heartbeat for 2 s" in killed["error"]
    assert [r["status"] for r in forecast_store.recent_runs(engine)] == ["ok", "ok", "interrupted"]
    engine.dispose()


# ---- fencing -----------------------------------------------------------------------------


def forecast_row(ticker: str) -> dict:
    return {
        "ticker": ticker,
        "as_of": dt.date(2024, 1, 2),
        "horizon": 1,
        "target_date": dt.date(2024, 1, 3),
        "last_price": 100.0,
        "forecast": 101.0,
        "model_name": "fcm-lstm",
        "model_version": "1",
        "created_at": forecast_store.utcnow(),
    }


def stored_tickers(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(forecast_store.forecasts.c.ticker)).scalars())


def test_a_holder_whose_lock_was_taken_over_cannot_commit_its_batch(store_url):
    engine = forecast_store.connect(store_url)
    old = forecast_store.acquire_lock(engine, "daily", "old", timedelta(seconds=0.5))
    assert forecast_store.write_forecasts(engine, [forecast_row("AAA")], fence=old) == 1  # held: commits

    time.sleep(0.7)  # the holder stalls (a GC pause, a suspended VM): its lease expires...
    new = forecast_store.acquire_lock(engine, "daily", "new", timedelta(minutes=5))  # ...and is taken over
    assert new is not None
    with pytest.raises(
        LockLostError, match=r"lock daily: old lost it \(now held by new\); the write was rolled back"
    ):
        forecast_store.write_forecasts(engine, [forecast_row("BBB")], fence=old)
    assert forecast_store.write_forecasts(engine, [forecast_row("CCC")], fence=new) == 1
    assert stored_tickers(engine) == ["AAA", "CCC"]
    engine.dispose()


def test_an_expired_lease_cannot_commit_even_before_a_takeover(store_url):
    engine = forecast_store.connect(store_url)
    lease = forecast_store.acquire_lock(engine, "daily", "slow", timedelta(seconds=0.3))
    time.sleep(0.5)
    with pytest.raises(LockLostError, match="lock daily: slow's lease expired at .* without renewal"):
        forecast_store.write_forecasts(engine, [forecast_row("AAA")], fence=lease)
    assert stored_tickers(engine) == []
    engine.dispose()


def test_a_lease_kept_by_job_lock_stays_valid_for_fenced_writes(store_url):
    engine = forecast_store.connect(store_url)
    with forecast_store.job_lock(engine, "daily", "one", timedelta(seconds=1.5)) as lease:
        time.sleep(2.0)  # longer than the ttl: the renewal thread keeps the lease
        assert forecast_store.write_forecasts(engine, [forecast_row("AAA")], fence=lease) == 1
    with pytest.raises(LockLostError, match=r"one lost it \(released\)"):  # released at the end
        forecast_store.write_forecasts(engine, [forecast_row("BBB")], fence=lease)
    engine.dispose()
