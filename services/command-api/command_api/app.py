"""HTTP entry of the write side: parse the request, hand a command to the handlers, shape the reply."""

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import Gauge
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from command_api.accounts import Accounts, SignedIn, public
from command_api.admission import admit_writes
from command_api.handlers import (
    Command,
    ContactHandlers,
    CreateContact,
    DeleteContact,
    Origin,
    PatchContact,
    ReplaceContact,
)
from command_api.imports import MEDIA_TYPES, ImportJobs
from command_api.openapi import openapi_document
from shared import consistency
from shared.db import open_pool
from shared.health import broker_reachable, database_ready
from shared.http import SAFE_METHODS, TOKEN, json_response, serve_common
from shared.identity import SESSION_COOKIE, Identity
from shared.limits import limit_requests
from shared.logs import configure_logging, correlation_id
from shared.models import Contact
from shared.settings import Settings, get_settings

PENDING_CREATES = Gauge(
    "command_api_pending_creates", "Creates committed whose deferred reply is not sent yet", multiprocess_mode="livesum"
)

_ETAG = re.compile(r'\s*(?:W/)?"?(\d{1,18})"?\s*')


def create_app(settings: Settings | None = None) -> Flask:
    """The composition root of one worker: runs after fork, so the pool belongs to this process."""
    settings = settings or get_settings()
    configure_logging("command-api", settings.log_level)
    pool = open_pool(settings)
    handlers = ContactHandlers(pool)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    def readiness() -> tuple[dict[str, str], bool]:
        # Writes need only PostgreSQL: the outbox holds events while RabbitMQ is away.
        database = database_ready(pool)
        broker = broker_reachable(settings.amqp_url)
        return {"database": "ok" if database else "unavailable", "broker": "ok" if broker else "unreachable"}, database

    identity = Identity.start(settings, settings.database_url)
    accounts = Accounts(pool, identity.tokens, settings)
    imports = ImportJobs(pool)
    serve_common(app, openapi_document, readiness, identity)
    admit_writes(app, settings.command_api_max_writes_in_progress)
    limit_requests(app, pool, settings)  # after serve_common: its identity hook sets g.caller

    @app.after_request
    def consistency_token(response: Response) -> Response:
        """Every write's reply names the WAL position after its commit, for reading it back from a replica."""
        if request.method not in SAFE_METHODS and 200 <= response.status_code < 300:
            position = consistency.write_position(pool)
            if position is not None:
                response.headers[consistency.HEADER] = position
        return response

    def handle(command: Command, idempotency_key: str | None = None) -> Contact | None:
        return handlers.handle(command, Origin("api", correlation_id.get(), idempotency_key, g.caller.actor()))

    @app.post("/api/contacts")
    def create_contact() -> Response:
        contact = handle(CreateContact(_json_body()), _idempotency_key())
        assert contact is not None
        body = contact.model_dump_json().encode()
        due = g.arrived + settings.create_reply_delay_seconds
        # The view returns at once, so Flask's request context is freed; the server sends the status
        # line and body only when the deferred body yields, `due` after the request arrived.
        response = Response(_deferred(body, due), 201, mimetype="application/json")
        response.headers.update({"ETag": f'"{contact.version}"', "Location": f"/api/contacts/{contact.id}"})
        response.content_length = len(body)
        return response

    @app.put("/api/contacts/<int:contact_id>")
    def replace_contact(contact_id: int) -> Response:
        return _contact_response(handle(ReplaceContact(contact_id, _json_body(), _expected_version())))

    @app.patch("/api/contacts/<int:contact_id>")
    def patch_contact(contact_id: int) -> Response:
        return _contact_response(handle(PatchContact(contact_id, _json_body(), _expected_version())))

    @app.delete("/api/contacts/<int:contact_id>")
    def delete_contact(contact_id: int) -> Response:
        handle(DeleteContact(contact_id, _expected_version()))
        return Response(status=204)

    @app.post("/api/session")
    def sign_in() -> Response:
        signed_in = accounts.sign_in(_json_body())
        response = json_response(_session_body(signed_in))
        # The cookie is the session: it lives as long, and only the app's own pages can send or read it.
        response.set_cookie(
            SESSION_COOKIE,
            signed_in.session_token,
            max_age=settings.session_seconds,
            path="/",
            secure=request.is_secure or request.headers.get("X-Forwarded-Proto") == "https",
            httponly=True,
            samesite="Strict",
        )
        return response

    @app.get("/api/session")
    def session() -> Response:
        return json_response(accounts.session(g.caller))

    @app.delete("/api/session")
    def sign_out() -> Response:
        accounts.sign_out(g.caller)
        response = Response(status=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response

    @app.get("/api/users")
    def list_users() -> Response:
        return json_response({"items": [public(user) for user in accounts.users()]})

    @app.post("/api/users")
    def create_user() -> Response:
        user = accounts.create_user(_json_body(), g.caller)
        response = json_response(public(user), 201)
        response.headers["Location"] = f"/api/users/{user['id']}"
        return response

    @app.patch("/api/users/<int:user_id>")
    def patch_user(user_id: int) -> Response:
        return json_response(public(accounts.patch_user(user_id, _json_body(), g.caller)))

    @app.post("/api/imports")
    def create_import() -> Response:
        job = imports.submit(g.caller, *_file_body(settings.import_max_bytes), correlation_id.get())
        response = json_response(job, 202)
        response.headers["Location"] = f"/api/imports/{job['id']}"
        return response

    @app.get("/api/imports/<uuid:job_id>")
    def get_import(job_id: uuid.UUID) -> Response:
        return json_response(imports.job(str(job_id), g.caller))

    return app


def _file_body(max_bytes: int) -> tuple[str, bytes]:
    """An import file's media type and bytes: 415 unless CSV or vCard (in UTF-8), 413 over `max_bytes`."""
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype not in MEDIA_TYPES or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("send the file as text/csv or text/vcard, in UTF-8")
    request.max_content_length = max_bytes
    return request.mimetype, request.get_data()


def _session_body(signed_in: SignedIn) -> dict[str, Any]:
    return {"user": signed_in.user, "access_token": signed_in.access_token, "expires_at": signed_in.expires_at}


def _deferred(body: bytes, due: float) -> Iterator[bytes]:
    """A response body that waits until `due` (a monotonic time); under gevent the wait is a sleeping greenlet."""
    with PENDING_CREATES.track_inprogress():
        time.sleep(max(0.0, due - time.monotonic()))
    yield body


def _json_body() -> Any:
    """The JSON request body: 415 if it is not JSON, 400 if malformed, 413 if over the size limit."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json (or application/merge-patch+json)")
    try:
        return json.loads(request.get_data())
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None


def _idempotency_key() -> str | None:
    """The request's Idempotency-Key, scoped to its caller (one person's key never meets another's, as the
    IETF draft asks), and stored apart from the `command_id`s of RabbitMQ commands."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not TOKEN.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters")
    return f"http:{g.caller.id}:{key}"


def _expected_version() -> int | None:
    """The version named by `If-Match` (`"3"`, `W/"3"` or `3`); `*` or no header means any version.

    An ETag we never issued can match no version, so it is read as version 0, which none has.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    matched = _ETAG.fullmatch(header)
    return int(matched.group(1)) if matched else 0


def _contact_response(contact: Contact | None, status: int = 200) -> Response:
    assert contact is not None
    response = Response(contact.model_dump_json(), status, mimetype="application/json")
    response.headers["ETag"] = f'"{contact.version}"'
    return response
