"""Run heartbeats, lock tokens for fencing, and the scheduler's persistent job store.

- job_runs.heartbeat_at: a running job updates it; a run whose heartbeat is stale is marked
  `interrupted` by the next job to start.
- job_locks.token: a fresh token per acquisition; a writer checks it before committing.
- scheduler_jobs: APScheduler 3's SQLAlchemyJobStore table (its exact layout), created here
  under the schema lock rather than by the scheduler racing the API on a fresh database.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("job_runs", sa.Column("heartbeat_at", sa.DateTime))
    op.add_column("job_locks", sa.Column("token", sa.String(32)))
    op.create_table(
        "scheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_scheduler_jobs_next_run_time", "scheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_jobs_next_run_time", table_name="scheduler_jobs")
    op.drop_table("scheduler_jobs")
    with op.batch_alter_table("job_locks") as batch:  # SQLite rebuilds the table
        batch.drop_column("token")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("heartbeat_at")
