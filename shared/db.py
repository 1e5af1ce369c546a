"""PostgreSQL connections: a pool per process, opened by its composition root after fork."""

import atexit
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from shared.settings import Settings


def session_options(settings: Settings, read_only_role: str | None = None) -> str:
    """Server settings every connection of ours runs with: UTC times and no stuck transactions.

    With `read_only_role` the session also acts as that role, whoever logged in, and refuses writes.
    """
    options = (
        "-c timezone=UTC"
        f" -c statement_timeout={settings.db_statement_timeout_ms}"
        " -c idle_in_transaction_session_timeout=30000"
    )
    if read_only_role:
        options += f" -c role={read_only_role} -c default_transaction_read_only=on"
    return options


def open_pool(
    settings: Settings, url: str | None = None, name: str = "contacts", read_only_role: str | None = None
) -> ConnectionPool[Connection[dict[str, Any]]]:
    pool: ConnectionPool[Connection[dict[str, Any]]] = ConnectionPool(
        url or settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        # Autocommit: a lone statement is its own transaction, with no BEGIN and COMMIT round trips around
        # it; a caller that needs several statements to be atomic opens `conn.transaction()`.
        kwargs={"autocommit": True, "row_factory": dict_row, "options": session_options(settings, read_only_role)},
        name=name,
        open=False,
    )
    pool.open(wait=False)
    atexit.register(pool.close)  # close while the interpreter (and gevent) still runs
    return pool
