"""The forecast store: forecasts, job runs and job locks in one SQL database (SQLAlchemy 2 Core).

SQLite in the data folder by default (`Settings.forecast_store_url`, `sqlite:///<home>/forecasts.db`),
PostgreSQL by URL (`postgresql://user@host/db`, driven by psycopg 3). Tables are created on
`connect`. Every write is one transaction and idempotent: a forecast row is keyed by ticker,
as-of date, horizon, model name and model version, and writing it again changes nothing.

Times are stored as naive UTC (`utcnow`); dates (as_of, target_date) are exchange-local days.

The API reads with `latest_forecasts(engine, ticker)`; the jobs write with `write_forecasts`
and record themselves with `record_run`; the scheduler serialises jobs with `job_lock`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

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
    sa.Index("ix_job_runs_started_at", "started_at"),
)

job_locks = sa.Table(
    "job_locks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted")


def utcnow() -> datetime:
    """Now in UTC, naive, at microsecond precision: what the DateTime columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def connect(url: str) -> Engine:
    """An engine on the store at `url`, with its tables created when missing.

    `postgresql://` URLs use psycopg 3 (SQLAlchemy's default PostgreSQL driver is psycopg2);
    a SQLite file's folder is created. Make one engine per process and share it: it pools
    connections.
    """
    sa_url = sa.make_url(url)
    kwargs: dict = {}
    if sa_url.drivername in ("postgresql", "postgres"):
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    elif sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            from pathlib import Path

            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        # Two processes (scheduler and a manual run) may write at once: wait for the lock.
        kwargs["connect_args"] = {"timeout": 30}
    engine = sa.create_engine(sa_url, **kwargs)
    metadata.create_all(engine)
    return engine


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


def write_forecasts(engine: Engine, rows: Sequence[dict]) -> int:
    """Insert forecast rows in one transaction; return how many were new.

    Rows whose key (ticker, as_of, horizon, model_name, model_version) is stored already are
    left as they are, so re-running a batch is a no-op. Any failure rolls back the whole batch.
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
        return len(conn.execute(stmt, list(rows)).all())


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
def record_run(engine: Engine, job: str) -> Iterator[RunRecord]:
    """Record a job run: a `running` row at the start, its status, counts and error at the end.

    The job may set `record.status` ("partial" when some tickers were skipped) and
    `record.error`; an exception marks the run `failed` with its message and propagates.
    """
    with engine.begin() as conn:
        run_id = conn.execute(
            job_runs.insert().values(job=job, started_at=utcnow(), status="running").returning(job_runs.c.id)
        ).scalar_one()
    record = RunRecord(run_id)
    try:
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


def recent_runs(engine: Engine, limit: int = 20, job: str | None = None) -> list[dict]:
    """The latest job runs, newest first."""
    query = sa.select(job_runs).order_by(job_runs.c.started_at.desc(), job_runs.c.id.desc()).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# ---- job locks ---------------------------------------------------------------------------


def acquire_lock(engine: Engine, name: str, holder: str, ttl: timedelta) -> bool:
    """Take the lock `name` for `holder` until now + ttl; False when someone else holds it.

    An expired lock (its holder died without releasing it) is taken over. Works the same on
    SQLite and PostgreSQL: the row insert is the atomic step, and a concurrent insert of the
    same name waits for the first transaction and then does nothing.
    """
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(job_locks.delete().where(job_locks.c.name == name, job_locks.c.expires_at <= now))
        stmt = (
            _insert(engine, job_locks)
            .values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(job_locks.c.name)
        )
        return conn.execute(stmt).first() is not None


def renew_lock(engine: Engine, name: str, holder: str, ttl: timedelta) -> bool:
    """Push the expiry of `holder`'s lock to now + ttl; False when it no longer holds it."""
    with engine.begin() as conn:
        result = conn.execute(
            job_locks.update()
            .where(job_locks.c.name == name, job_locks.c.holder == holder)
            .values(expires_at=utcnow() + ttl)
        )
        return result.rowcount == 1


def release_lock(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(job_locks.delete().where(job_locks.c.name == name, job_locks.c.holder == holder))


@contextlib.contextmanager
def job_lock(engine: Engine, name: str, holder: str, ttl: timedelta) -> Iterator[bool]:
    """Hold the lock `name` while the block runs; yields False (and holds nothing) if taken.

    A background thread renews the lock every ttl/3, so a long job keeps it and a crashed
    one loses it after at most `ttl`.
    """
    if not acquire_lock(engine, name, holder, ttl):
        yield False
        return
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(ttl.total_seconds() / 3):
            try:
                if not renew_lock(engine, name, holder, ttl):
                    log.error("lock %s: %s lost it (expired and taken over)", name, holder)
                    return
            except sa.exc.SQLAlchemyError as exc:  # keep trying: the database may come back
                log.warning("lock %s: renewal failed: %s", name, exc)

    thread = threading.Thread(target=heartbeat, name=f"lock-{name}", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        done.set()
        thread.join()
        release_lock(engine, name, holder)
