"""The schema `metadata.create_all` made before migrations: forecasts, job_runs, job_locks.

A store created then has these tables and no version table; `upgrade` stamps it 0001 first.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("target_date", sa.Date, nullable=False),
        sa.Column("last_price", sa.Double, nullable=False),
        sa.Column("forecast", sa.Double, nullable=False),
        sa.Column("lower_80", sa.Double),
        sa.Column("upper_80", sa.Double),
        sa.Column("lower_95", sa.Double),
        sa.Column("upper_95", sa.Double),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "ticker", "as_of", "horizon", "model_name", "model_version", name="pk_forecasts"
        ),
        sa.CheckConstraint("horizon >= 1", name="ck_forecasts_horizon"),
        sa.CheckConstraint("forecast > 0 AND last_price > 0", name="ck_forecasts_positive"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", sa.JSON),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_job_runs_started_at", "job_runs", ["started_at"])
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_locks")
    op.drop_index("ix_job_runs_started_at", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("forecasts")
