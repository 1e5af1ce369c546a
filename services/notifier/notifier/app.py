"""The notifier's composition root: WebSocket `/ws` and the HTTP probes on one port, fed by one consumer."""

import asyncio
import logging
import resource
import signal
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from notifier import messages
from notifier.access import Client, Gate
from notifier.consumer import EventConsumer
from notifier.fanout import Fanout
from notifier.imports import ImportProgress
from notifier.presence import Presence
from notifier.presence_bus import PresenceBus
from notifier.recent import RecentEvents
from notifier.session import serve_client
from shared.identity import Identity, IdentityUnavailable, Unauthenticated
from shared.logs import configure_logging
from shared.metrics import render_metrics
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

ProcessRequest = Callable[[ServerConnection, Request], Response | None]


def origin_allowed(origins: list[str], host: str | None, allowed: frozenset[str]) -> bool:
    """No Origin (not a browser), an allowed one, or a page from the host the client connected to."""
    if not origins:
        return True
    if len(origins) > 1:
        return False
    if origins[0] in allowed:
        return True
    own = _hostname(f"//{host}") if host is not None else None
    return own is not None and _hostname(origins[0]) == own


def _hostname(url: str) -> str | None:
    """The host name in `url`, None when it has none or is not a URL at all."""
    try:
        return urlsplit(url).hostname
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        return None


def routes(settings: Settings, fanout: Fanout, consumer: EventConsumer, gate: Gate) -> ProcessRequest:
    """Answer the HTTP paths, and refuse a WebSocket handshake that must not go on, before it happens."""
    allowed = frozenset(settings.notifier_allowed_origins)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return _reply(HTTPStatus.OK, "alive\n")
        if path == "/readyz":
            if consumer.subscribed:
                return _reply(HTTPStatus.OK, "ready\n")
            return _reply(HTTPStatus.SERVICE_UNAVAILABLE, "not subscribed to contacts.events\n")
        if path == "/metrics":
            body, content_type = render_metrics()
            return _reply(HTTPStatus.OK, body, content_type)
        if path != "/ws":
            return _reply(HTTPStatus.NOT_FOUND, "not found: the WebSocket is at /ws\n")
        if request.protocol != "HTTP/1.1":
            return _reply(HTTPStatus.BAD_REQUEST, "a WebSocket handshake is an HTTP/1.1 request\n")
        hosts = request.headers.get_all("Host")
        if len(hosts) > 1:
            return _reply(HTTPStatus.BAD_REQUEST, "one Host header, not several\n")
        if not origin_allowed(request.headers.get_all("Origin"), hosts[0] if hosts else None, allowed):
            return _reply(HTTPStatus.FORBIDDEN, "this Origin may not open /ws\n")
        assert isinstance(connection, Client), "serve(create_connection=Client)"
        try:
            gate.admit(connection, request)
        except Unauthenticated as refused:
            challenge = {"WWW-Authenticate": refused.challenge}
            return _reply(HTTPStatus.UNAUTHORIZED, f"{refused.detail}\n", headers=challenge)
        except IdentityUnavailable as unavailable:
            return _reply(HTTPStatus.SERVICE_UNAVAILABLE, f"{unavailable.detail}\n")
        try:
            messages.resume_from_query(query)
        except messages.ClientMessageError as error:
            return _reply(HTTPStatus.BAD_REQUEST, f"{error}\n")
        if fanout.recent.epoch is None:
            return _reply(HTTPStatus.SERVICE_UNAVAILABLE, "not subscribed to contacts.events yet; retry\n")
        return None

    return process_request


def _reply(
    status: HTTPStatus,
    body: str | bytes,
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    fields = [("Content-Type", content_type), ("Content-Length", str(len(data))), ("Connection", "close")]
    return Response(status.value, status.phrase, Headers([*fields, *(headers or {}).items()]), data)


async def run(settings: Settings) -> None:
    """The composition root: the fan-out, its consumer, the gate and the revocations it hears of, presence and
    its bus, import progress, the server."""
    loop = asyncio.get_running_loop()
    fanout = Fanout(RecentEvents(settings.notifier_resume_events), settings.notifier_client_buffer_bytes)
    consumer = EventConsumer(settings, fanout)
    presence = Presence(
        fanout.broadcast,
        settings.notifier_presence_ttl_seconds,
        settings.notifier_presence_max_contacts,
        settings.notifier_presence_rate_per_second,
        settings.notifier_presence_burst,
    )
    presence_bus = PresenceBus(settings.amqp_url, presence, settings.notifier_max_backoff_seconds)
    identity = await asyncio.to_thread(Identity.start, settings, settings.database_url)
    gate = Gate(identity)

    def on_revoked(session_id: str) -> None:  # called in the revocations' listener thread
        loop.call_soon_threadsafe(gate.revoked, session_id)

    identity.revocations.on_revoked = on_revoked
    progress = ImportProgress(settings)

    async def handler(client: ServerConnection) -> None:
        assert isinstance(client, Client)
        with gate.watching(client), progress.watching(client):
            await serve_client(client, fanout, presence)

    async with serve(
        handler,
        host="0.0.0.0",
        port=settings.notifier_port,
        create_connection=Client,
        process_request=routes(settings, fanout, consumer, gate),
        max_size=settings.notifier_max_message_bytes,
        ping_interval=settings.notifier_ping_interval_seconds,
        ping_timeout=settings.notifier_ping_timeout_seconds,
        close_timeout=settings.notifier_close_timeout_seconds,
        compression=None,  # per-client deflate would compress each event once per client
    ):
        log.info("listening", extra={"port": settings.notifier_port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        tasks = (consumer.run(), presence_bus.run(), presence.run(), progress.run())
        running = [asyncio.create_task(task) for task in tasks]
        await asyncio.wait([*running, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        presence.withdraw()
        for task in running:
            task.cancel()
        # Leaving the block closes every client with 1001 (going away); they reconnect elsewhere and resume.


def main() -> None:
    settings = get_settings()
    configure_logging("notifier", settings.log_level)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # One socket per client: allow as many as the hard limit permits.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(run(settings))
