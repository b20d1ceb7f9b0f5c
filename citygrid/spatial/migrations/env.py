"""Alembic environment: migrations run on a connection handed in by ``citygrid.spatial.db.upgrade``."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `citygrid db init` (citygrid.spatial.db.upgrade)")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
