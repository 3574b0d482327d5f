"""The batch job's joint products: per-ticker VaR / ES (`risk`) and quintile ranks (`ranks`).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def _key() -> list[sa.Column]:
    return [
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "risk",
        *_key(),
        sa.Column("alpha", sa.Double, nullable=False),
        sa.Column("var", sa.Double, nullable=False),
        sa.Column("es", sa.Double, nullable=False),
        sa.Column("paths", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "ticker", "as_of", "horizon", "model_name", "model_version", "alpha", name="pk_risk"
        ),
        sa.CheckConstraint("alpha > 0 AND alpha < 1", name="ck_risk_alpha"),
    )
    op.create_table(
        "ranks",
        *_key(),
        *(sa.Column(f"rank{k}", sa.Double, nullable=False) for k in range(1, 6)),
        sa.Column("n_tickers", sa.Integer, nullable=False),
        sa.Column("paths", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("ticker", "as_of", "horizon", "model_name", "model_version", name="pk_ranks"),
    )


def downgrade() -> None:
    op.drop_table("ranks")
    op.drop_table("risk")
