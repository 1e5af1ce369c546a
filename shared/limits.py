"""Limits on sign-in attempts and on writes (SPEC §8 "Limits"), counted in PostgreSQL.

Every instance and every worker of command-api counts in the same rows of `rate_limits` (migration 0006),
one statement per limit, so a limit holds exactly however many of them run: the libraries' shared counters
(limits, flask-limiter) live in Redis, Memcached or MongoDB, which this system does not run, and the
gateway's `limit_req` sees neither the user nor the username, and is counted per gateway.

A limit is a fixed window: the first request of a subject starts it, and its count ends with it. A request
over a limit is answered `429` with `Retry-After`; every counted request, refused or not, carries the
`RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers (-08 and later).
"""

import hashlib
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from psycopg_pool import ConnectionPool

from shared.http import problem_response
from shared.problems import schema_ref
from shared.settings import Settings

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGN_IN_PATH = "/api/session"

#: Count one request of a subject: a new window if there is none or it ended; the count and its seconds left.
_HIT = """
INSERT INTO rate_limits AS counted (key, window_ends, hits)
VALUES (%(key)s, now() + make_interval(secs => %(window)s), 1)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN counted.window_ends > now() THEN counted.hits + 1 ELSE 1 END,
    window_ends = CASE WHEN counted.window_ends > now() THEN counted.window_ends ELSE excluded.window_ends END
RETURNING hits, ceil(extract(epoch FROM window_ends - now()))::int AS reset
"""


@dataclass(frozen=True)
class Limit:
    """A quota of requests per window, under the name RateLimit-Policy gives it."""

    name: str
    quota: int
    window_seconds: int

    def key(self, subject: str) -> bytes:
        """The row of `subject` under this limit: a digest, so no username or address is stored, and any
        string (however long, with a NUL or a lone surrogate) makes a key."""
        return hashlib.sha256(f"{self.name}\0{subject}".encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Count:
    """Where a subject stands in its current window."""

    limit: Limit
    hits: int
    reset_seconds: int

    @property
    def exceeded(self) -> bool:
        return self.hits > self.limit.quota


def count(pool: ConnectionPool[Any], counted: list[tuple[Limit, str]]) -> list[Count]:
    """Count one request against each (limit, subject)."""
    with pool.connection() as conn:
        rows = [
            conn.execute(_HIT, {"key": limit.key(subject), "window": limit.window_seconds}).fetchone()
            for limit, subject in counted
        ]
    return [Count(limit, row["hits"], max(row["reset"], 1)) for (limit, _), row in zip(counted, rows, strict=True)]


def rate_limit_headers(counts: list[Count]) -> dict[str, str]:
    """The draft's fields: each policy (`q` requests per `w` seconds), and what is left of it (`r`) for `t`
    more seconds."""
    return {
        "RateLimit-Policy": ", ".join(f'"{c.limit.name}";q={c.limit.quota};w={c.limit.window_seconds}' for c in counts),
        "RateLimit": ", ".join(
            f'"{c.limit.name}";r={max(c.limit.quota - c.hits, 0)};t={c.reset_seconds}' for c in counts
        ),
    }


def client_address(forwarded_for_hops: int) -> str:
    """The client's address as the farthest of our `forwarded_for_hops` proxies saw it: each appends its
    peer to X-Forwarded-For, so what a client wrote there itself is further left and never read."""
    forwarded = [part.strip() for part in ",".join(request.headers.getlist("X-Forwarded-For")).split(",")]
    if forwarded_for_hops and len(forwarded) >= forwarded_for_hops and forwarded[-forwarded_for_hops]:
        return forwarded[-forwarded_for_hops]
    return request.remote_addr or ""


def limit_requests(app: Flask, pool: ConnectionPool[Any], settings: Settings) -> None:
    """Count sign-in attempts (per username and per client address) and writes (per user) before they are
    handled, and refuse those over a limit. Register it after the hook that sets `g.caller`."""
    by_username = Limit("sign-in-username", settings.sign_in_attempts_per_username, settings.sign_in_window_seconds)
    by_address = Limit("sign-in-address", settings.sign_in_attempts_per_address, settings.sign_in_window_seconds)
    writes = Limit("writes", settings.writes_per_user, settings.writes_window_seconds)

    def counted() -> list[tuple[Limit, str]]:
        if request.method not in WRITE_METHODS or not request.path.startswith("/api/"):
            return []
        if request.path != SIGN_IN_PATH:
            return [(writes, str(g.caller.id))]
        if request.method != "POST":
            return []  # signing out is never refused
        body = request.get_json(silent=True) if request.is_json else None
        username = body.get("username") if isinstance(body, dict) else None
        by_client = (by_address, client_address(settings.forwarded_for_hops))
        return [(by_username, username.lower()), by_client] if isinstance(username, str) else [by_client]

    @app.before_request
    def refuse_over_limit() -> Response | None:
        subjects = counted()
        if not subjects:
            return None
        g.rate_limits = counts = count(pool, subjects)
        exceeded = [c for c in counts if c.exceeded]
        if not exceeded:
            return None
        response = problem_response(
            {
                "type": "/problems/too-many-requests",
                "title": "Too many requests",
                "status": 429,
                "detail": "; ".join(
                    f"over the limit {c.limit.name} ({c.limit.quota} per {c.limit.window_seconds} s)" for c in exceeded
                )
                + "; retry after Retry-After seconds",
            }
        )
        response.headers["Retry-After"] = str(max(c.reset_seconds for c in exceeded))
        return response

    @app.after_request
    def advertise(response: Response) -> Response:
        if "rate_limits" in g:
            response.headers.update(rate_limit_headers(g.rate_limits))
        return response


#: The OpenAPI responses of an operation that counts against a limit: its 429 and the fields it carries.
TOO_MANY_REQUESTS: dict[str, Any] = {
    "429": {
        "description": "over a limit: retry after Retry-After seconds (the problem's detail names the limit)",
        "headers": {
            "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "seconds"},
            "RateLimit-Policy": {
                "schema": {"type": "string"},
                "description": 'each limit counted, e.g. `"writes";q=300;w=60` (draft-ietf-httpapi-ratelimit-headers)',
            },
            "RateLimit": {
                "schema": {"type": "string"},
                "description": 'what is left of each limit, e.g. `"writes";r=0;t=42`: r requests for t seconds',
            },
        },
        "content": {"application/problem+json": {"schema": schema_ref("Problem")}},
    }
}
