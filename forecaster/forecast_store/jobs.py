"""Job runs (recorded, with a heartbeat) and job locks (leases with a fencing token)."""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from forecaster.config import Settings
from forecaster.forecast_store.tables import RUN_STATUSES, _insert, job_locks, job_runs, utcnow
from forecaster.runtime.redact import mask_credentials

log = logging.getLogger(__name__)


class RunRecord:
    """What a running job reports: `counts` (a dict it fills) and a final `status`."""

    def __init__(self, run_id: int):
        self.id = run_id
        self.counts: dict = {}
        self.status = "ok"
        self.error: str | None = None


@contextlib.contextmanager
def record_run(
    engine: Engine, job: str, *, heartbeat_s: float = 30, stale_after_s: float = 300
) -> Iterator[RunRecord]:
    """Record a job run: a `running` row at the start, its status, counts and error at the end.

    The job may set `record.status` ("partial" when some tickers were skipped) and
    `record.error`; an exception marks the run `failed` with its message and propagates.
    While it runs, a background thread sets `heartbeat_at` every `heartbeat_s`. A process
    killed with SIGKILL never writes its end, so each start first marks `interrupted` every
    run of any job whose heartbeat is older than `stale_after_s` (keep it several heartbeats).
    """
    mark_interrupted(engine, timedelta(seconds=stale_after_s))
    record = RunRecord(_start_run(engine, job))
    try:
        with _every(heartbeat_s, lambda: _beat(engine, record.id), f"heartbeat-{job}-{record.id}"):
            yield record
    except BaseException as exc:
        record.status, record.error = "failed", store_error_line(exc) or f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _finish_run(engine, record)


def _start_run(engine: Engine, job: str) -> int:
    """Insert the `running` row of a new run of `job`; returns its id."""
    with engine.begin() as conn:
        now = utcnow()
        return conn.execute(
            job_runs.insert()
            .values(job=job, started_at=now, heartbeat_at=now, status="running")
            .returning(job_runs.c.id)
        ).scalar_one()


def _beat(engine: Engine, run_id: int) -> bool:
    """Set the heartbeat of a run that is still `running` (one marked interrupted stays so)."""
    with engine.begin() as conn:
        conn.execute(
            job_runs.update()
            .where(job_runs.c.id == run_id, job_runs.c.status == "running")
            .values(heartbeat_at=utcnow())
        )
    return True


def _finish_run(engine: Engine, record: RunRecord) -> None:
    """Write the run's end: its status (`failed` when not a known one), counts and error.

    The error is stored with its credentials masked: `forecaster runs` shows it to anyone.
    """
    if record.status not in RUN_STATUSES:
        record.status, record.error = "failed", f"unknown status {record.status!r}"
    if record.error is not None:
        record.error = mask_credentials(record.error)
    with engine.begin() as conn:
        conn.execute(
            job_runs.update()
            .where(job_runs.c.id == record.id)
            .values(finished_at=utcnow(), status=record.status, counts=record.counts, error=record.error)
        )


def mark_interrupted(engine: Engine, stale_after: timedelta) -> int:
    """Mark `interrupted` the running runs whose last heartbeat is older than `stale_after`.

    Their `finished_at` is the last heartbeat: the last time the run was known alive.
    """
    last_seen = sa.func.coalesce(job_runs.c.heartbeat_at, job_runs.c.started_at)
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            job_runs.update()
            .where(job_runs.c.status == "running", last_seen < now - stale_after)
            .values(
                status="interrupted",
                finished_at=last_seen,
                error=f"no heartbeat for {stale_after.total_seconds():g} s at {now:%Y-%m-%d %H:%M:%S} UTC: "
                "the process was killed or lost the database",
            )
        )
    if result.rowcount:
        log.warning("marked %d stale running job runs interrupted", result.rowcount)
    return result.rowcount


def store_error_line(exc: BaseException) -> str | None:
    """A database error in one line: the database (its URL masked) and what the driver said.

    Not SQLAlchemy's text, which adds the statement and its parameters. The database is the
    forecast store unless the error came through MLflow (its tracking store). None when `exc`
    is no database error.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    frames = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    try:
        settings = Settings()
    except Exception:  # settings that do not parse: say what the driver said
        return f"database error: {reason}"
    if any("/mlflow/" in name for name in frames):
        store = settings.mlflow_uri or settings.home / "mlflow.db"
        return mask_credentials(f"MLflow tracking store {store}: {reason}")
    url = settings.forecast_store_url
    line = f"forecast store {url} (FORECASTER_FORECAST_STORE_URL): {reason}"
    database = sa.make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        line += f" (folder {Path(database).parent})"
    return mask_credentials(line)


def recent_runs(engine: Engine, limit: int = 20, job: str | None = None) -> list[dict]:
    """The latest job runs, newest first."""
    query = sa.select(job_runs).order_by(job_runs.c.started_at.desc(), job_runs.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


@contextlib.contextmanager
def _every(interval_s: float, tick: Callable[[], bool], name: str) -> Iterator[None]:
    """Call `tick` every `interval_s` in a daemon thread while the block runs.

    `tick` returning False ends the thread; a database error is logged and retried at the
    next tick, since the database may come back.
    """
    done = threading.Event()

    def loop() -> None:
        while not done.wait(interval_s):
            try:
                if not tick():
                    return
            except sa.exc.SQLAlchemyError as exc:
                log.warning("%s: %s", name, exc)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@dataclass(frozen=True)
class Lease:
    """A held job lock. `token` is new at each acquisition, so a holder that lost the lock
    (expired, taken over) is told apart from the new holder even under the same name."""

    name: str
    holder: str
    token: str


class LockLostError(RuntimeError):
    """A fenced write found that its lease is no longer held; nothing was written."""


def acquire_lock(engine: Engine, name: str, holder: str, ttl: timedelta) -> Lease | None:
    """Take the lock `name` for `holder` until now + ttl; None when someone else holds it.

    An expired lock (its holder died without releasing it) is taken over. Works the same on
    SQLite and PostgreSQL: the row insert is the atomic step, and a concurrent insert of the
    same name waits for the first transaction and then does nothing.
    """
    now, token = utcnow(), uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(job_locks.delete().where(job_locks.c.name == name, job_locks.c.expires_at <= now))
        stmt = (
            _insert(engine, job_locks)
            .values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl, token=token)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(job_locks.c.name)
        )
        if conn.execute(stmt).first() is None:
            return None
    return Lease(name, holder, token)


def renew_lock(engine: Engine, name: str, holder: str, ttl: timedelta, token: str | None = None) -> bool:
    """Push the expiry of `holder`'s lock (of that `token`, when given) to now + ttl.

    False when it no longer holds it.
    """
    where = [job_locks.c.name == name, job_locks.c.holder == holder]
    if token is not None:
        where.append(job_locks.c.token == token)
    with engine.begin() as conn:
        result = conn.execute(job_locks.update().where(*where).values(expires_at=utcnow() + ttl))
        return result.rowcount == 1


def release_lock(engine: Engine, name: str, holder: str, token: str | None = None) -> None:
    where = [job_locks.c.name == name, job_locks.c.holder == holder]
    if token is not None:
        where.append(job_locks.c.token == token)
    with engine.begin() as conn:
        conn.execute(job_locks.delete().where(*where))


def check_lease(conn: sa.Connection, lease: Lease) -> None:
    """Raise `LockLostError` unless `lease` is still held, inside the caller's transaction.

    Call it after the transaction's writes, just before its commit. On PostgreSQL the lock
    row is then locked (FOR UPDATE) until the commit, so a takeover waits for it; on SQLite
    the writes already hold the database's write lock, so no takeover can commit in between.
    """
    row = conn.execute(
        sa.select(job_locks.c.holder, job_locks.c.token, job_locks.c.expires_at)
        .where(job_locks.c.name == lease.name)
        .with_for_update()
    ).first()
    if row is None or row.token != lease.token:
        now_held = f"now held by {row.holder}" if row is not None else "released"
        raise LockLostError(
            f"lock {lease.name}: {lease.holder} lost it ({now_held}); the write was rolled back"
        )
    if row.expires_at <= utcnow():
        raise LockLostError(
            f"lock {lease.name}: {lease.holder}'s lease expired at {row.expires_at:%Y-%m-%d %H:%M:%S} UTC "
            "without renewal; the write was rolled back"
        )


@contextlib.contextmanager
def job_lock(engine: Engine, name: str, holder: str, ttl: timedelta) -> Iterator[Lease | None]:
    """Hold the lock `name` while the block runs; yields its `Lease`, or None if taken.

    A background thread renews the lock every ttl/3, so a long job keeps it and a crashed
    one loses it after at most `ttl`. Pass the lease to fenced writes (`write_forecasts`).
    """
    lease = acquire_lock(engine, name, holder, ttl)
    if lease is None:
        yield None
        return

    def renew() -> bool:
        if renew_lock(engine, name, holder, ttl, lease.token):
            return True
        log.error("lock %s: %s lost it (expired and taken over)", name, holder)
        return False

    try:
        with _every(ttl.total_seconds() / 3, renew, f"lock-{name}"):
            yield lease
    finally:
        release_lock(engine, name, holder, lease.token)
