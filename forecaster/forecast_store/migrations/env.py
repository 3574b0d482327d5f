"""Alembic environment: always online, on the connection `forecast_store` passes in.

`forecast_store` holds the schema lock (a PostgreSQL advisory lock or a file lock beside the
SQLite file) and the transaction; this only runs the migration scripts inside them.
"""

from alembic import context

from forecaster.forecast_store.schema import VERSION_TABLE

if context.is_offline_mode():
    raise SystemExit("forecast store migrations run online only: forecaster.forecast_store.upgrade(url)")

context.configure(connection=context.config.attributes["connection"], version_table=VERSION_TABLE)
with context.begin_transaction():  # a no-op inside the caller's transaction, which commits
    context.run_migrations()
