"""HTTP entry of the read side: parse the query, ask the views, shape the reply."""

import itertools

from flask import Flask, Response, request
from prometheus_client import Gauge

from query_api.errors import ContactNotFound
from query_api.openapi import openapi_document
from query_api.params import parse_export_query, parse_history_query, parse_list_query
from query_api.views import ContactViews
from shared import consistency
from shared.contact_files import write_csv, write_vcards
from shared.db import open_pool
from shared.health import database_ready
from shared.http import json_response, serve_common
from shared.identity import Identity
from shared.logs import configure_logging
from shared.settings import Settings, get_settings

REPLAY_LAG_SECONDS = Gauge(
    "query_api_replica_replay_lag_seconds",
    "How far the database query-api reads from trails its primary: seconds since the last transaction it "
    "replayed, while it holds WAL it has not replayed (0 on a primary, or once it has replayed all it received)",
    multiprocess_mode="mostrecent",
)
REPLAY_LAG_BYTES = Gauge(
    "query_api_replica_replay_lag_bytes",
    "WAL the database query-api reads from has received but not replayed yet (0 on a primary)",
    multiprocess_mode="mostrecent",
)


def create_app(settings: Settings | None = None) -> Flask:
    """The composition root of one worker: runs after fork, so the pool belongs to this process."""
    settings = settings or get_settings()
    configure_logging("query-api", settings.log_level)
    pool = open_pool(
        settings, settings.query_database_url, name="query-api", read_only_role=settings.query_database_role
    )
    views = ContactViews(pool)

    app = Flask(__name__)

    def readiness() -> tuple[dict[str, str], bool]:
        # Reads need only PostgreSQL; the broker is not on this service's path.
        ready = database_ready(pool)
        return {"database": "ok" if ready else "unavailable"}, ready

    # Revocations are heard from the database this service reads, as the role it reads as (from its primary,
    # when that is a replica: a hot standby cannot LISTEN).
    identity = Identity.start(
        settings, settings.query_identity_database_url or settings.query_database_url or settings.database_url
    )
    serve_common(app, openapi_document, readiness, identity)

    @app.before_request
    def read_after_write() -> None:
        """After the caller is known: a read that names a write waits until this database has it."""
        given = request.headers.get(consistency.HEADER)
        if given is not None and request.path.startswith("/api/"):
            consistency.wait_for_replay(pool, given, settings.read_after_write_timeout_seconds)

    @app.before_request
    def replica_lag() -> None:
        """The lag on /metrics is measured as it is scraped."""
        lag = consistency.replay_lag(pool) if request.path == "/metrics" else None
        if lag is not None:
            REPLAY_LAG_SECONDS.set(lag[0])
            REPLAY_LAG_BYTES.set(lag[1])

    @app.get("/api/contacts")
    def list_contacts() -> Response:
        return json_response(views.contacts(parse_list_query(request.args)))

    @app.get("/api/contacts/export")
    def export_contacts() -> Response:
        query = parse_export_query(request.args)
        rows = views.export(query)
        # The query runs before the reply starts, so that a database that is away is a 503, not a cut-off file.
        contacts = itertools.chain(list(itertools.islice(rows, 1)), rows)
        if query.format == "csv":
            body, media_type, extension = write_csv(contacts), "text/csv; charset=utf-8", "csv"
        else:
            body, media_type, extension = write_vcards(contacts), "text/vcard; charset=utf-8", "vcf"
        response = Response((text.encode() for text in body), content_type=media_type)
        response.headers["Content-Disposition"] = f'attachment; filename="contacts.{extension}"'
        return response

    @app.get("/api/contacts/<int:contact_id>")
    def get_contact(contact_id: int) -> Response:
        contact = views.contact(contact_id)
        if contact is None:
            raise ContactNotFound(contact_id)
        etag = f'"{contact["version"]}"'
        if_none_match = request.headers.get("If-None-Match", "")
        fresh = etag in if_none_match or if_none_match.strip() == "*"
        response = Response(status=304) if fresh else json_response(contact)
        response.headers["ETag"] = etag
        return response

    @app.get("/api/contacts/<int:contact_id>/history")
    def contact_history(contact_id: int) -> Response:
        page = views.history(contact_id, parse_history_query(request.args))
        if page is None:
            raise ContactNotFound(contact_id)
        return json_response(page)

    return app
