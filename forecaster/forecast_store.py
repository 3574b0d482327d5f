"""The forecast store: forecasts, job runs and job locks in one SQL database (SQLAlchemy 2 Core).

SQLite in the data folder by default (`Settings.forecast_store_url`, `sqlite:///<home>/forecasts.db`),
PostgreSQL by URL (`postgresql://user@host/db`, driven by psycopg 3). Every write is one
transaction and idempotent: a forecast row is keyed by ticker, as-of date, horizon, model name
and model version, and writing it again changes nothing.

The schema is versioned by Alembic (`forecaster/migrations`, version table
`forecast_store_version`). `connect` creates it on an empty database, once: under a PostgreSQL
advisory lock, or a file lock beside a SQLite file, so an API and a scheduler starting
together on a fresh database do not race. Upgrades are explicit: `connect` refuses a store
whose schema is older or newer than this code, naming the fix; `upgrade(url)` (or
`python -m forecaster.forecast_store upgrade [URL]`) migrates it, with jobs and API stopped.

Times are stored as naive UTC (`utcnow`); dates (as_of, target_date) are exchange-local days.

The API reads with `latest_forecasts(engine, ticker)`; the jobs write with `write_forecasts`
and record themselves with `record_run` (a heartbeat while they run; runs whose heartbeat
stopped are marked `interrupted` at the next start); the scheduler serialises jobs with
`job_lock`, whose `Lease` fences the batch write: it commits only while the lease is held.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

metadata = sa.MetaData()

FORECAST_KEY = ("ticker", "as_of", "horizon", "model_name", "model_version")

forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),  # the last bar the forecast read
    sa.Column("horizon", sa.Integer, nullable=False),  # trading days after as_of
    sa.Column("target_date", sa.Date, nullable=False),
    sa.Column("last_price", sa.Double, nullable=False),  # adjusted close on as_of
    sa.Column("forecast", sa.Double, nullable=False),
    sa.Column("lower_80", sa.Double),
    sa.Column("upper_80", sa.Double),
    sa.Column("lower_95", sa.Double),
    sa.Column("upper_95", sa.Double),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(64)),  # MLflow run that trained the model
    sa.Column("created_at", sa.DateTime, nullable=False),
    # The key doubles as the index of `latest_forecasts` (ticker, then as_of).
    sa.PrimaryKeyConstraint(*FORECAST_KEY, name="pk_forecasts"),
    sa.CheckConstraint("horizon >= 1", name="ck_forecasts_horizon"),
    sa.CheckConstraint("forecast > 0 AND last_price > 0", name="ck_forecasts_positive"),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | partial | failed | interrupted
    sa.Column("counts", sa.JSON),  # what the job did, e.g. {"tickers": 500, "rows_written": 2500}
    sa.Column("error", sa.Text),
    sa.Column("heartbeat_at", sa.DateTime),  # last sign of life of a running job
    sa.Index("ix_job_runs_started_at", "started_at"),
)

job_locks = sa.Table(
    "job_locks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
    sa.Column("token", sa.String(32)),  # new per acquisition: the fencing token
)

RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted")


def utcnow() -> datetime:
    """Now in UTC, naive, at microsecond precision: what the DateTime columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def connect(url: str) -> Engine:
    """An engine on the store at `url`; an empty database gets the schema, created once.

    `postgresql://` URLs use psycopg 3 (SQLAlchemy's default PostgreSQL driver is psycopg2);
    a SQLite file's folder is created and must be writable. Raises `SchemaVersionError` when
    the store's schema is not this code's (run `upgrade`). Make one engine per process and
    share it: it pools connections.
    """
    engine = _create_engine(url)
    try:
        revision = _revision_of(engine)
        if revision != schema_head():
            # Empty, or caught mid-creation by another process (its tables visible, its version
            # not yet): decide under the schema lock, which that process holds until it is done.
            with _schema_lock(engine) as conn:
                revision = _revision(conn)
                if revision is None:  # an empty database: install the schema
                    _alembic("upgrade", conn, "head")
                    revision = schema_head()
        if revision != schema_head():
            raise SchemaVersionError(_mismatch(engine, revision))
    except BaseException:
        engine.dispose()
        raise
    return engine


def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate the store at `url` to this code's schema; return (revision before, after).

    Explicit, and run once with the jobs and the API stopped: `connect` never migrates. A
    store made before migrations existed (tables, no version) is recognised as 0001.
    """
    engine = _create_engine(url)
    try:
        with _schema_lock(engine) as conn:
            before = _revision(conn)
            if before is not None and not _known(before):
                raise SchemaVersionError(_mismatch(engine, before))
            if before == BASELINE and not _versioned(conn):
                _alembic("stamp", conn, BASELINE)
            _alembic("upgrade", conn, "head")
        return before, schema_head()
    finally:
        engine.dispose()


class SchemaVersionError(RuntimeError):
    """The store's schema is older or newer than this code's; the message says what to run."""


VERSION_TABLE = "forecast_store_version"  # not Alembic's default name: never clash with MLflow's
BASELINE = "0001"  # the schema of stores created by `metadata.create_all` before migrations
# One advisory lock key for "the forecast store schema" (any bigint; this one is stable).
_SCHEMA_LOCK_KEY = zlib.crc32(b"forecaster.forecast_store schema")


def _create_engine(url: str) -> Engine:
    sa_url = sa.make_url(url)
    kwargs: dict = {}
    if sa_url.drivername in ("postgresql", "postgres"):
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    elif sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            from forecaster.paths import ensure_writable

            # SQLite writes its journal beside the file: the folder itself must be writable.
            ensure_writable(Path(sa_url.database).parent)
        # Two processes (scheduler and a manual run) may write at once: wait for the lock.
        kwargs["connect_args"] = {"timeout": 30}
    return sa.create_engine(sa_url, **kwargs)


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that holds the schema lock; commits at the end.

    PostgreSQL: a transaction-level advisory lock (released by the commit, or by the server
    when the process dies). SQLite: a file lock beside the database file.
    """
    with contextlib.ExitStack() as stack:
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            from filelock import FileLock

            stack.enter_context(FileLock(f"{database}.schema.lock", timeout=120))
        conn = stack.enter_context(engine.connect())
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        yield conn
        conn.commit()


def _revision_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: sa.Connection) -> str | None:
    """The store's schema revision; None for an empty database, BASELINE for a pre-migration one."""
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if revision is None and sa.inspect(conn).has_table("forecasts"):
        return BASELINE
    return revision


def _versioned(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(VERSION_TABLE)


def _alembic(command: str, conn: sa.Connection, revision: str) -> None:
    from alembic import command as commands
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = conn
    getattr(commands, command)(config, revision)


@lru_cache
def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(__file__).parent / "migrations"))


def schema_head() -> str:
    """The schema revision this code reads and writes."""
    return _scripts().get_current_head()


def _known(revision: str) -> bool:
    return revision in {script.revision for script in _scripts().walk_revisions()}


def _mismatch(engine: Engine, revision: str | None) -> str:
    where = f"forecast store {engine.url.render_as_string(hide_password=True)}"
    head = schema_head()
    if revision is not None and not _known(revision):
        return (
            f"{where}: schema revision {revision} is newer than this code's {head}; "
            "run a newer version of the code against it (or point at another store)"
        )
    return (
        f"{where}: schema revision {revision} is older than this code's {head}; upgrade it once, "
        "with jobs and API stopped: python -m forecaster.forecast_store upgrade [URL]"
    )


@contextlib.contextmanager
def _engine(engine_or_url: Engine | str) -> Iterator[Engine]:
    """The given engine, or a temporary one on the given URL (disposed afterwards)."""
    if not isinstance(engine_or_url, str):
        yield engine_or_url
        return
    engine = connect(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _insert(engine: Engine, table: sa.Table):
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    try:
        return dialects[engine.dialect.name](table)
    except KeyError:
        raise ValueError(f"forecast store: unsupported database {engine.dialect.name!r}") from None


# ---- forecasts ---------------------------------------------------------------------------


def write_forecasts(engine: Engine, rows: Sequence[dict], fence: Lease | None = None) -> int:
    """Insert forecast rows in one transaction; return how many were new.

    Rows whose key (ticker, as_of, horizon, model_name, model_version) is stored already are
    left as they are, so re-running a batch is a no-op. Any failure rolls back the whole batch.
    With a `fence` (the job's lock lease), the transaction commits only if the lease is still
    held at that moment; otherwise it rolls back and raises `LockLostError`.
    """
    if not rows:
        return 0
    for i, row in enumerate(rows):
        for column in ("forecast", "last_price"):
            value = row.get(column)
            if value is None or not math.isfinite(value):
                raise ValueError(
                    f"{row.get('ticker')}: {column} is {value} at horizon {row.get('horizon')} "
                    f"as of {row.get('as_of')} (row {i})"
                )
    stmt = (
        _insert(engine, forecasts)
        .on_conflict_do_nothing(index_elements=list(FORECAST_KEY))
        .returning(forecasts.c.ticker)
    )
    with engine.begin() as conn:
        written = len(conn.execute(stmt, list(rows)).all())
        if fence is not None:
            check_lease(conn, fence)  # after the writes: see check_lease
        return written


def latest_forecasts(engine_or_url: Engine | str, ticker: str, model_name: str | None = None) -> list[dict]:
    """The latest forecast of `ticker`: one dict per horizon, ordered by horizon; [] if none.

    "Latest" is the most recent as_of date, and of the model versions that forecast from that
    date the one written last (so after a rollback, the restored champion's rows win).
    `model_name` restricts to one registered model. Each dict has the `forecasts` columns:
    ticker, as_of and target_date (`datetime.date`), horizon, last_price, forecast,
    lower_80/upper_80/lower_95/upper_95 (None when not computed), model_name, model_version,
    run_id and created_at (naive UTC `datetime`).

    Pass the `Engine` from `connect` (created once, e.g. in the API's lifespan); a URL string
    also works but opens a new engine per call.
    """
    from forecaster.data.validation import validate_ticker

    t = forecasts.c
    where = [t.ticker == validate_ticker(ticker)]
    if model_name is not None:
        where.append(t.model_name == model_name)
    with _engine(engine_or_url) as engine, engine.connect() as conn:
        newest = conn.execute(
            sa.select(t.as_of, t.model_name, t.model_version)
            .where(*where)
            .order_by(t.as_of.desc(), t.created_at.desc())
            .limit(1)
        ).first()
        if newest is None:
            return []
        rows = conn.execute(
            sa.select(forecasts)
            .where(
                *where,
                t.as_of == newest.as_of,
                t.model_name == newest.model_name,
                t.model_version == newest.model_version,
            )
            .order_by(t.horizon)
        )
        return [dict(r._mapping) for r in rows]


# ---- job runs ----------------------------------------------------------------------------


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
    with engine.begin() as conn:
        now = utcnow()
        run_id = conn.execute(
            job_runs.insert()
            .values(job=job, started_at=now, heartbeat_at=now, status="running")
            .returning(job_runs.c.id)
        ).scalar_one()
    record = RunRecord(run_id)

    def beat() -> bool:
        with engine.begin() as conn:
            conn.execute(
                job_runs.update()
                .where(job_runs.c.id == run_id, job_runs.c.status == "running")
                .values(heartbeat_at=utcnow())
            )
        return True

    try:
        with _every(heartbeat_s, beat, f"heartbeat-{job}-{run_id}"):
            yield record
    except BaseException as exc:
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if record.status not in RUN_STATUSES:
            record.status, record.error = "failed", f"unknown status {record.status!r}"
        with engine.begin() as conn:
            conn.execute(
                job_runs.update()
                .where(job_runs.c.id == run_id)
                .values(
                    finished_at=utcnow(),
                    status=record.status,
                    counts=record.counts,
                    error=record.error,
                )
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


# ---- job locks ---------------------------------------------------------------------------


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


# ---- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """python -m forecaster.forecast_store upgrade [URL]: migrate a store's schema explicitly."""
    parser = argparse.ArgumentParser(prog="python -m forecaster.forecast_store", description=main.__doc__)
    parser.add_argument("command", choices=["upgrade"])
    parser.add_argument("url", nargs="?", help="default: the forecast_store_url setting")
    args = parser.parse_args(argv)
    if args.url is None:
        from forecaster.config import Settings

        args.url = Settings().forecast_store_url
    where = sa.make_url(args.url).render_as_string(hide_password=True)
    try:
        before, after = upgrade(args.url)
    except (SchemaVersionError, OSError, sa.exc.SQLAlchemyError) as exc:
        sys.exit(f"error: {exc}")
    print(f"{where}: schema {before or 'empty'} -> {after}")


if __name__ == "__main__":
    main()
