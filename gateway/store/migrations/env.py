"""Alembic environment: migrate the engine the store hands over (see gateway/store/migrate.py)."""

from __future__ import annotations

from alembic import context

from gateway.store.tables import metadata

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    context.run_migrations()
