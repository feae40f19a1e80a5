"""coverage cells record who last ran them (the ledger's done_by)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coverage_cell", schema=None) as batch_op:
        batch_op.add_column(sa.Column("done_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("coverage_cell", schema=None) as batch_op:
        batch_op.drop_column("done_by")
