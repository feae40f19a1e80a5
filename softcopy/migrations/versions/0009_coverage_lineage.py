"""coverage snapshots share unchanged cell rows: lineage, ended_by, coverage_head

A snapshot's cells were all written anew each time (33,000 rows for ten years of three
sources). Now a cell row belongs to every snapshot of its lineage (the same range of days)
from the snapshot that wrote it up to the one that replaced it (`ended_by`), and
`coverage_head` keeps, per (lineage, source), a digest of the newest rows, so a snapshot
writes only the cells that changed. A row thus outlives the snapshot that wrote it, so its
`snapshot_id` loses the foreign key (coverage.prune deletes rows no kept snapshot shares).
`artifact_missing` says a cell is stale because the
file its ledger entry names is gone. Existing snapshots each become a lineage of their own
("#<id>"), so their cells read back as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# the foreign key was made without a name: on SQLite the batch copy names it by this
# convention; PostgreSQL named it itself
NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _snapshot_fk() -> str:
    if op.get_context().dialect.name == "sqlite":
        return "fk_coverage_cell_snapshot_id_coverage_snapshot"
    return "coverage_cell_snapshot_id_fkey"


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString()
    with op.batch_alter_table("coverage_snapshot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineage", text, nullable=False, server_default=""))
        batch_op.create_index("ix_coverage_snapshot_lineage", ["lineage"], unique=False)
    with op.batch_alter_table("coverage_cell", schema=None, naming_convention=NAMES) as batch_op:
        batch_op.drop_constraint(_snapshot_fk(), type_="foreignkey")
        batch_op.add_column(
            sa.Column("artifact_missing", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("lineage", text, nullable=False, server_default=""))
        batch_op.add_column(sa.Column("ended_by", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_coverage_cell_lineage", ["lineage", "source", "ended_by"], unique=False
        )
    op.execute("UPDATE coverage_snapshot SET lineage = '#' || CAST(id AS VARCHAR)")
    op.execute("UPDATE coverage_cell SET lineage = '#' || CAST(snapshot_id AS VARCHAR)")
    op.create_table(
        "coverage_head",
        sa.Column("lineage", text, nullable=False),
        sa.Column("source", text, nullable=False),
        sa.Column("digest", text, nullable=False),
        sa.PrimaryKeyConstraint("lineage", "source"),
    )


def downgrade() -> None:
    op.drop_table("coverage_head")
    op.execute(
        "DELETE FROM coverage_cell WHERE snapshot_id NOT IN (SELECT id FROM coverage_snapshot)"
    )
    with op.batch_alter_table("coverage_cell", schema=None) as batch_op:
        batch_op.create_foreign_key(
            _snapshot_fk(), "coverage_snapshot", ["snapshot_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.drop_index("ix_coverage_cell_lineage")
        batch_op.drop_column("ended_by")
        batch_op.drop_column("lineage")
        batch_op.drop_column("artifact_missing")
    with op.batch_alter_table("coverage_snapshot", schema=None) as batch_op:
        batch_op.drop_index("ix_coverage_snapshot_lineage")
        batch_op.drop_column("lineage")
