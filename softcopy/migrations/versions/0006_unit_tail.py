"""scan index: where an append-only file was read to, and each source's listing stamp

A JSONL or mbox file that only grew since its last scan is read from its previous end
(memory/scan.py); a prefix whose digest changed is read again whole. A source whose
listing stamp (a git repository's refs) did not change is not listed again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_scan",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("listing", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    with op.batch_alter_table("source_unit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("read_to", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prefix_digest", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("records", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_unit", schema=None) as batch_op:
        batch_op.drop_column("records")
        batch_op.drop_column("prefix_digest")
        batch_op.drop_column("read_to")
    op.drop_table("source_scan")
