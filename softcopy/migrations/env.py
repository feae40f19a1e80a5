"""Alembic environment: runs on the connection `softcopy.db.migrate` hands over."""

from alembic import context
from sqlmodel import SQLModel

import softcopy.models  # noqa: F401  (registers every table on the metadata)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("softcopy migrations run through softcopy.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
