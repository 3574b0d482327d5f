"""Every quantile and the regime of each stored forecast, and the ACI state beside them.

- forecasts.quantiles: the served quantile prices, JSON {"0.025": price, ...};
- forecasts.regime / regime_label / regime_shift: the dominant regime, its name, the shift flag;
- aci_state: working levels of adaptive conformal inference per ticker, model, horizon and level.

Rows written before this revision keep NULL there.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("forecasts", sa.Column("quantiles", sa.JSON))
    op.add_column("forecasts", sa.Column("regime", sa.Integer))
    op.add_column("forecasts", sa.Column("regime_label", sa.String(100)))
    op.add_column("forecasts", sa.Column("regime_shift", sa.Boolean))
    op.create_table(
        "aci_state",
        sa.Column("ticker", sa.String(32), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("level", sa.Double, nullable=False),
        sa.Column("working_level", sa.Double, nullable=False),
        sa.Column("updated_through", sa.Date, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("ticker", "model_name", "horizon", "level", name="pk_aci_state"),
    )


def downgrade() -> None:
    op.drop_table("aci_state")
    with op.batch_alter_table("forecasts") as batch:  # SQLite rebuilds the table
        for column in ("regime_shift", "regime_label", "regime", "quantiles"):
            batch.drop_column(column)
