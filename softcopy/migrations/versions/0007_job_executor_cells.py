"""jobs name where their steps run `executor` and count `cells`

A job's `engine` column becomes `executor` (the word for where a step runs: inline,
notebook, papermill, or a plugin's), and `days_total`/`days_done` become
`cells_total`/`cells_done`, which is what they always counted: (source, day, stage) cells.
The values are kept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = (("engine", "executor"), ("days_total", "cells_total"), ("days_done", "cells_done"))


def upgrade() -> None:
    with op.batch_alter_table("ingestion_job", schema=None) as batch_op:
        for old, new in RENAMES:
            batch_op.alter_column(old, new_column_name=new)


def downgrade() -> None:
    with op.batch_alter_table("ingestion_job", schema=None) as batch_op:
        for old, new in RENAMES:
            batch_op.alter_column(new, new_column_name=old)
