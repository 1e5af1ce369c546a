"""PostgreSQL connections: a pool per process, opened by its composition root after fork."""

import atexit
from typing import Any

from psycopg import Connection, OperationalError
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from shared.settings import Settings

Pool = ConnectionPool[Connection[dict[str, Any]]]

#: How long the pool goes on replacing a lost connection before it leaves the slot free for a request to
#: fill. Its delays double from 1 s, so a long outage would otherwise leave the next attempt many seconds
#: after the database is back.
RECONNECT_TIMEOUT_SECONDS = 5.0


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


class CheckedPool(Pool):
    """A pool that never hands a request a connection the server has dropped (SPEC §9).

    Each connection is checked with an empty query, one round trip, as it is taken. When one has died,
    the database has most likely restarted or been cut off, and every idle connection with it: all of
    them are checked and the dead ones replaced at once, then a live one is taken. psycopg_pool's own
    `check` would sleep a second and more between the dead connections it meets.
    """

    def getconn(self, timeout: float | None = None) -> Connection[dict[str, Any]]:
        conn = super().getconn(timeout)
        try:
            self.check_connection(conn)
        except OperationalError:
            self.putconn(conn)  # broken: closed and replaced by the pool
            self.check()
            conn = super().getconn(timeout)
        return conn


def open_pool(
    settings: Settings, url: str | None = None, name: str = "contacts", read_only_role: str | None = None
) -> Pool:
    pool = CheckedPool(
        url or settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        # Autocommit: a lone statement is its own transaction, with no BEGIN and COMMIT round trips around
        # it; a caller that needs several statements to be atomic opens `conn.transaction()`.
        kwargs={"autocommit": True, "row_factory": dict_row, "options": session_options(settings, read_only_role)},
        name=name,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        open=False,
    )
    pool.open(wait=False)
    atexit.register(pool.close)  # close while the interpreter (and gevent) still runs
    return pool
