"""Reading one's own writes from a replica (SPEC §10): the `Consistency-Token` of a write, and a read's wait for it.

The token is a WAL position of the primary, taken after the write committed: its insert position, which
is at or past the end of the commit's record, written as one hexadecimal number (the bytes of WAL before
it: PostgreSQL's `16/B374D848` is `16B374D848`). A replica has replayed the write once it has replayed that
far. A read that sends the token back waits until its database has, up to READ_AFTER_WRITE_TIMEOUT_SECONDS;
a primary (a database not in recovery) has every committed write, so it never waits.
"""

import logging
import re
import time
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from shared.db import Pool
from shared.problems import Problem

log = logging.getLogger(__name__)

HEADER = "Consistency-Token"
#: A WAL position: a hexadecimal number of up to 64 bits, e.g. `16B374D848`.
TOKEN = re.compile(r"[0-9A-Fa-f]{1,16}")
TOKEN_SCHEMA: dict[str, Any] = {"type": "string", "pattern": f"^{TOKEN.pattern}$"}  # the pattern bounds its length
#: The header in the OpenAPI documents: on every write's reply (command-api), as a parameter of every read (query-api).
OPENAPI_REPLY_HEADER: dict[str, Any] = {
    "schema": TOKEN_SCHEMA,
    "description": "where the write stands in the database's history; send it back with a read to read the write "
    "(absent only when the database could not be asked for it)",
}
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "schema": TOKEN_SCHEMA,
    "description": "a write reply's token: the read waits up to READ_AFTER_WRITE_TIMEOUT_SECONDS until the database "
    "it reads from has that write, else 503 with Retry-After; another shape is a 400",
}
#: How often a waiting read asks the replica again.
POLL_SECONDS = 0.01


class InvalidConsistencyToken(Problem):
    status = 400
    title = "Invalid Consistency-Token"
    slug = "invalid-consistency-token"

    def __init__(self) -> None:
        super().__init__(
            f"{HEADER} must be a token from a write reply, e.g. 16B374D848",
            [{"field": HEADER, "message": "not a WAL position"}],
        )


class ReplicaBehind(Problem):
    """The replica has not replayed the write the token names within READ_AFTER_WRITE_TIMEOUT_SECONDS."""

    status = 503
    title = "Service unavailable"
    slug = "replica-behind"

    def __init__(self, token: str, seconds: float) -> None:
        super().__init__(f"the replica has not replayed the write of {HEADER} {token} within {seconds:g} s; retry")


def write_position(pool: Pool) -> str | None:
    """The token of the writes committed so far; None when the database cannot be asked.

    One round trip, on a connection the pool does not check first (CheckedPool's empty query): a dead one
    costs this reply its token and nothing else, and the pool replaces it.
    """
    conn = ConnectionPool.getconn(pool)
    try:
        row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0' AS lsn").fetchone()
    except psycopg.Error:
        log.warning("no %s: the database could not be asked for its WAL position", HEADER, exc_info=True)
        return None
    finally:
        pool.putconn(conn)
    return format(int(row["lsn"]), "X") if row else None


def wait_for_replay(pool: Pool, given: str, timeout_seconds: float) -> None:
    """Return once the pool's database has replayed the write of token `given`; raise InvalidConsistencyToken
    for a token of another shape, ReplicaBehind after `timeout_seconds`."""
    if not TOKEN.fullmatch(given):
        raise InvalidConsistencyToken()
    deadline = time.monotonic() + timeout_seconds
    while True:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= '0/0'::pg_lsn + %s AS replayed",
                (Decimal(int(given, 16)),),
            ).fetchone()
        if row and row["replayed"]:
            return
        if time.monotonic() >= deadline:
            raise ReplicaBehind(given, timeout_seconds)
        time.sleep(POLL_SECONDS)


def replay_lag(pool: Pool) -> tuple[float, float] | None:
    """How far the pool's database trails its primary: seconds since the last transaction it replayed while it
    has WAL it has not replayed, and the bytes of that WAL (both 0 on a primary); None when it cannot be asked."""
    try:
        with pool.connection() as conn:
            row = conn.execute(
                """SELECT CASE WHEN NOT pg_is_in_recovery()
                                 OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                               ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS seconds,
                          coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0) AS bytes"""
            ).fetchone()
    except psycopg.Error:
        log.warning("the replica's lag could not be measured", exc_info=True)
        return None
    return (float(row["seconds"] or 0), float(row["bytes"])) if row else None
