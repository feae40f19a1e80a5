"""steps say which Dask worker ran them; jobs link to the Dask dashboard

With the dask executor a job's steps run on the workers of a Dask cluster: `job_step.worker`
names the worker that ran (or runs) a step, and `ingestion_job.dask_dashboard` is the link
to the cluster's dashboard, so the job view can show where its work happened.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_step", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker", sa.String(), nullable=True))
    with op.batch_alter_table("ingestion_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dask_dashboard", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingestion_job", schema=None) as batch_op:
        batch_op.drop_column("dask_dashboard")
    with op.batch_alter_table("job_step", schema=None) as batch_op:
        batch_op.drop_column("worker")
