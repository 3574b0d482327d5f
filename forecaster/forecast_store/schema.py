"""Schema of the forecast store: engines, creation on an empty database, explicit upgrades.

Alembic revisions live in `migrations/`. `connect` installs them on an empty database under
the schema lock (a PostgreSQL advisory lock, or a file lock beside a SQLite file) and refuses
any other revision than this code's head; `upgrade` is the explicit migration.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


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
            from forecaster.runtime.paths import ensure_writable

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
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    getattr(commands, command)(config, revision)


@lru_cache
def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


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
