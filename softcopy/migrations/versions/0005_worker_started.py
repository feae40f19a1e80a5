"""jobs record their worker's process start time, and when they began to wait for one

A worker is named by host, pid and start time, so `cancel --force` never signals a process
that merely reuses the pid; `queued_at` tells how long a queued job has gone unclaimed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import softcopy.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingestion_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker_started", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("queued_at", softcopy.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("ingestion_job", schema=None) as batch_op:
        batch_op.drop_column("queued_at")
        batch_op.drop_column("worker_started")
