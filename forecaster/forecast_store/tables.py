"""The forecast store's tables (SQLAlchemy Core) and the helpers every part of it shares."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

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
    # Every served quantile as a price, {"0.025": 97.1, ..., "0.975": 104.2} (`serving.level_key`):
    # one JSON value per row rather than a row per level, since they are always read together.
    sa.Column("quantiles", sa.JSON),
    sa.Column("regime", sa.Integer),  # dominant fuzzy cluster of the window (same on every horizon)
    sa.Column("regime_label", sa.String(100)),  # its readable name, e.g. "calm, rising"
    sa.Column("regime_shift", sa.Boolean),  # the dominant regime left the trailing one; NULL: too few bars
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
    sa.Column("token", sa.String(32)),  # new per acquisition: the fencing token
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

# Adaptive conformal inference (forecaster.calibration.aci) per ticker, model, horizon and level: the working
# level served instead of the nominal one, learnt from the outcomes of stored forecasts whose
# target dates are on or before `updated_through` (later runs learn only from later ones).
aci_state = sa.Table(
    "aci_state",
    metadata,
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("level", sa.Double, nullable=False),  # nominal quantile level
    sa.Column("working_level", sa.Double, nullable=False),  # the served one, whichever the method
    # DtACI's candidates {"gammas": [K], "levels": [K], "weights": [K]}; NULL: plain ACI (0005)
    sa.Column("candidates", sa.JSON),
    sa.Column("updated_through", sa.Date, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.PrimaryKeyConstraint("ticker", "model_name", "horizon", "level", name="pk_aci_state"),
)

# Joint products of the batch job's universe (forecaster.products), per ticker, as-of date, horizon
# and model version: VaR / ES at each tail probability alpha, and the quintile rank probabilities.
RISK_KEY = ("ticker", "as_of", "horizon", "model_name", "model_version", "alpha")
RANK_KEY = ("ticker", "as_of", "horizon", "model_name", "model_version")

risk = sa.Table(
    "risk",
    metadata,
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),  # trading days after as_of
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("alpha", sa.Double, nullable=False),  # tail probability
    sa.Column("var", sa.Double, nullable=False),  # loss exceeded with probability alpha, fraction of value
    sa.Column("es", sa.Double, nullable=False),  # mean loss over the worst alpha share of paths
    sa.Column("paths", sa.Integer, nullable=False),  # simulated paths (seeded)
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.PrimaryKeyConstraint(*RISK_KEY, name="pk_risk"),
    sa.CheckConstraint("alpha > 0 AND alpha < 1", name="ck_risk_alpha"),
)

ranks = sa.Table(
    "ranks",
    metadata,
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    # Probability of each quintile of the cross-section's h-day returns (rank1: the lowest), as in M6.
    *(sa.Column(f"rank{k}", sa.Double, nullable=False) for k in range(1, 6)),
    sa.Column("n_tickers", sa.Integer, nullable=False),  # the cross-section ranked
    sa.Column("paths", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.PrimaryKeyConstraint(*RANK_KEY, name="pk_ranks"),
)

RUN_STATUSES = ("running", "ok", "partial", "failed", "interrupted")


def utcnow() -> datetime:
    """Now in UTC, naive, at microsecond precision: what the DateTime columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def _insert(engine: Engine, table: sa.Table):
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    try:
        return dialects[engine.dialect.name](table)
    except KeyError:
        raise ValueError(f"forecast store: unsupported database {engine.dialect.name!r}") from None
