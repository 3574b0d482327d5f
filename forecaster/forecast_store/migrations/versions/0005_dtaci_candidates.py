"""DtACI beside ACI: each `aci_state` row may carry its candidates' levels and weights.

- aci_state.candidates: JSON {"gammas": [K], "levels": [K], "weights": [K]} of dynamically-tuned
  ACI (`forecaster.calibration.aci`); `working_level` stays the served level of either method.

Rows written before this revision keep NULL there: plain ACI, which a DtACI state reads as every
candidate at the stored working level.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("aci_state", sa.Column("candidates", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("aci_state") as batch:  # SQLite rebuilds the table
        batch.drop_column("candidates")
