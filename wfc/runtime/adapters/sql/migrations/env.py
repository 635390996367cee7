"""Alembic environment: migrations run on a connection wfc hands over (never from a .ini)."""

from __future__ import annotations

from alembic import context

from wfc.runtime.adapters.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
