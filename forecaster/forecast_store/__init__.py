"""The forecast store: forecasts, job runs and job locks in one SQL database (SQLAlchemy 2 Core).

SQLite in the data folder by default (`Settings.forecast_store_url`, `sqlite:///<home>/forecasts.db`),
PostgreSQL by URL (`postgresql://user@host/db`, driven by psycopg 3). Every write is one
transaction and idempotent: a forecast row is keyed by ticker, as-of date, horizon, model name
and model version, and writing it again changes nothing.

The schema is versioned by Alembic (`forecaster/forecast_store/migrations`, version table
`forecast_store_version`). `connect` creates it on an empty database, once: under a PostgreSQL
advisory lock, or a file lock beside a SQLite file, so an API and a scheduler starting
together on a fresh database do not race. Upgrades are explicit: `connect` refuses a store
whose schema is older or newer than this code, naming the fix; `upgrade(url)` (or
`python -m forecaster.forecast_store upgrade [URL]`) migrates it, with jobs and API stopped.

Times are stored as naive UTC (`utcnow`); dates (as_of, target_date) are exchange-local days.

Beside the forecasts lives the adaptive-conformal state (`aci_state`, see `aci_rows`): the batch
job learns it from the outcomes of stored forecasts and writes it in the transaction of its
forecasts; the API reads it (`load_aci_state`) to serve the same quantiles. The joint products of
the universe (per-ticker VaR / ES in `risk`, quintile rank probabilities in `ranks`, see
`product_rows`) are written in that transaction too (`write_batch`).

The API reads with `latest_forecasts(engine, ticker)`; the jobs write with `write_forecasts`
and record themselves with `record_run` (a heartbeat while they run; runs whose heartbeat
stopped are marked `interrupted` at the next start); the scheduler serialises jobs with
`job_lock`, whose `Lease` fences the batch write: it commits only while the lease is held.
"""

from forecaster.forecast_store.tables import (  # noqa: I001 (tables first: the others use them)
    FORECAST_KEY,
    RANK_KEY,
    RISK_KEY,
    RUN_STATUSES,
    aci_state,
    forecasts,
    job_locks,
    job_runs,
    metadata,
    ranks,
    risk,
    utcnow,
)
from forecaster.forecast_store.schema import (
    BASELINE,
    VERSION_TABLE,
    SchemaVersionError,
    connect,
    schema_head,
    upgrade,
)
from forecaster.forecast_store.jobs import (
    Lease,
    LockLostError,
    RunRecord,
    acquire_lock,
    check_lease,
    job_lock,
    mark_interrupted,
    recent_runs,
    record_run,
    release_lock,
    renew_lock,
)
from forecaster.forecast_store.aci_rows import aci_records, forecasts_due, load_aci_state
from forecaster.forecast_store.forecast_rows import (
    latest_forecasts,
    tickers_by_regime,
    write_batch,
    write_forecasts,
)

__all__ = [
    "BASELINE",
    "FORECAST_KEY",
    "RANK_KEY",
    "RISK_KEY",
    "RUN_STATUSES",
    "VERSION_TABLE",
    "Lease",
    "LockLostError",
    "RunRecord",
    "SchemaVersionError",
    "aci_records",
    "aci_state",
    "acquire_lock",
    "check_lease",
    "connect",
    "forecasts",
    "forecasts_due",
    "job_lock",
    "job_locks",
    "job_runs",
    "latest_forecasts",
    "load_aci_state",
    "mark_interrupted",
    "metadata",
    "ranks",
    "recent_runs",
    "record_run",
    "release_lock",
    "renew_lock",
    "risk",
    "schema_head",
    "tickers_by_regime",
    "upgrade",
    "utcnow",
    "write_batch",
    "write_forecasts",
]
