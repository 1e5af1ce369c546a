"""PostgreSQL connections: a pool per process, opened by its composition root after fork."""

from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from shared.settings import Settings


def session_options(settings: Settings) -> str:
    """Server settings every connection of ours runs with: UTC times and no stuck transactions."""
    return (
        "-c timezone=UTC"
        f" -c statement_timeout={settings.db_statement_timeout_ms}"
        " -c idle_in_transaction_session_timeout=30000"
    )


def open_pool(
    settings: Settings, url: str | None = None, name: str = "contacts"
) -> ConnectionPool[Connection[dict[str, Any]]]:
    pool: ConnectionPool[Connection[dict[str, Any]]] = ConnectionPool(
        url or settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        kwargs={"row_factory": dict_row, "options": session_options(settings)},
        name=name,
        open=False,
    )
    pool.open(wait=False)
    return pool
