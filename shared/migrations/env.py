"""Alembic runs our plain-SQL migrations against the URL `shared.migrate` hands it."""

from alembic import context
from sqlalchemy import create_engine

url = context.config.get_main_option("sqlalchemy.url")
assert url, "run migrations through `python -m shared.migrate`"
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
