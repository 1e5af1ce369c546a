"""What every Flask service of ours does alike: correlation ids, who is calling, request metrics, problem replies
and probes."""

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from flask import Flask, Response, g, request
from prometheus_client import Histogram
from werkzeug.exceptions import HTTPException

from shared.identity import Forbidden, Identity, Unauthenticated, credentials, required_role
from shared.logs import correlation_id, new_correlation_id
from shared.metrics import render_metrics
from shared.problems import Problem

log = logging.getLogger(__name__)

REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60),
)

RETRY_AFTER_SECONDS = 1
#: The methods that change nothing: the only ones a session cookie may send from another origin.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: A header value we accept as an id of the caller's (correlation id, idempotency key), and its JSON schema.
TOKEN = re.compile(r"[\x21-\x7e]{1,200}")
TOKEN_SCHEMA = {"type": "string", "pattern": f"^{TOKEN.pattern}$", "maxLength": 200, "minLength": 1}


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON reply, written by orjson: times as pydantic writes them (UTC as `Z`), UUIDs as strings."""
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), status, mimetype="application/json")


def problem_response(problem: dict[str, Any]) -> Response:
    return Response(orjson.dumps(problem), problem["status"], mimetype="application/problem+json")


def unavailable_response(detail: str) -> Response:
    """A 503 problem that says when to try again: the database away, or more work than can be done in time."""
    response = problem_response(
        {"type": "about:blank", "title": "Service unavailable", "status": 503, "detail": detail}
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def serve_common(
    app: Flask,
    openapi: Callable[[], dict[str, Any]],
    readiness: Callable[[], tuple[dict[str, str], bool]],
    identity: Identity,
) -> None:
    """Add the correlation id and timing of every request, its caller (`flask.g.caller`, SPEC §8),
    problem+json errors, and the probe endpoints."""

    @app.before_request
    def start() -> None:
        g.arrived = time.monotonic()
        given = request.headers.get("X-Request-ID", "")
        correlation_id.set(given if TOKEN.fullmatch(given) else new_correlation_id())

    @app.before_request
    def authenticate() -> None:
        """Refuse a request without a caller whose role allows it; a write by the session cookie must
        also come from the app's own origin (a cross-site request would carry the cookie too)."""
        role = required_role(request.method, request.path)
        if role is None:
            return
        given = credentials(request.headers, request.cookies)
        if given is None:
            raise Unauthenticated("sign in: send a bearer token (Authorization: Bearer …) or the session cookie")
        how, token = given
        caller = identity.caller(token)
        if not caller.may(role):
            raise Forbidden(f"this needs the {role} role; {caller.username} is a {caller.role}")
        cookie_write = how == "cookie" and request.method not in SAFE_METHODS
        if cookie_write and request.headers.get("Origin") not in identity.app_origins:
            raise Forbidden("a write with the session cookie must come from the app's own origin")
        g.caller = caller

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = correlation_id.get() or ""
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUEST_SECONDS.labels(request.method, route, response.status_code).observe(time.monotonic() - g.arrived)
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        body, ready = readiness()
        return json_response(body, 200 if ready else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        payload, content_type = render_metrics()
        return Response(payload, content_type=content_type)

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return json_response(openapi())

    @app.errorhandler(Problem)
    def refused(error: Problem) -> Response:
        response = problem_response(error.problem())
        if isinstance(error, Unauthenticated):
            response.headers["WWW-Authenticate"] = error.challenge
        if error.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(psycopg.OperationalError)  # also the pool's timeout, and a statement's
    def database_unavailable(error: psycopg.OperationalError) -> Response:
        log.warning("database unavailable: %s", error)
        return unavailable_response("the database is not answering right now; retry shortly")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = problem_response(
            {"type": "about:blank", "title": error.name, "status": status, "detail": error.description}
        )
        # werkzeug's own headers of the error: `Allow` of a 405, above all.
        response.headers.extend((name, value) for name, value in error.get_headers() if name != "Content-Type")
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error")
        return problem_response(
            {"type": "about:blank", "title": "Internal error", "status": 500, "detail": "see the logs"}
        )
