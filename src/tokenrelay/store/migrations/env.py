"""Alembic environment: tokenrelay runs migrations itself at start-up, on the
connection it passes in `config.attributes["connection"]` (store/sql.py)."""

from __future__ import annotations

from alembic import context

from tokenrelay.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
