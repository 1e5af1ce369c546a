"""Who may follow the stream (SPEC §8): the upgrade's credentials checked before it happens, and a live
connection closed when its token expires (4001) or its session is signed out (4003).

The token comes as on the HTTP APIs (`Authorization: Bearer`, the session cookie) or, for a browser's
WebSocket, which cannot set headers, as `?access_token=`. Checking it needs no database round trip:
`shared.identity.Identity` verifies the signature and looks the session up in the revocations its
listener keeps; that listener tells the gate, on the event loop, of each session revoked since.
"""

import asyncio
import contextlib
import time
from collections.abc import Iterator
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from prometheus_client import Counter
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from shared.identity import Caller, Identity, Unauthenticated, credentials

#: The close codes of a connection whose credentials stopped being good (private use, RFC 6455 §7.4.2).
TOKEN_EXPIRED = 4001
SESSION_REVOKED = 4003

CLOSED = Counter("notifier_clients_signed_out_total", "Clients closed because their credentials ended", ["reason"])


class Client(ServerConnection):
    """A `/ws` connection, with the caller its upgrade was authenticated as."""

    caller: Caller


class Gate:
    """Admits upgrades with valid credentials, and closes each live client once its credentials end."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._sessions: dict[str, set[Client]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def admit(self, client: Client, request: Request) -> None:
        """Keep the caller a token names on its connection; raises Unauthenticated (401) or
        IdentityUnavailable (503) when the upgrade must not go on."""
        client.caller = self._identity.caller(upgrade_token(request))

    @contextlib.contextmanager
    def watching(self, client: Client) -> Iterator[None]:
        """While the block runs, close the client when its token expires or its session is revoked."""
        loop = asyncio.get_running_loop()
        caller = client.caller
        expiry = loop.call_later(max(0.0, caller.expires_at - time.time()), self._close, client, TOKEN_EXPIRED)
        self._sessions.setdefault(caller.session_id, set()).add(client)
        if self._identity.revocations.revoked(caller.session_id):  # signed out while it was being upgraded
            self._close(client, SESSION_REVOKED)
        try:
            yield
        finally:
            expiry.cancel()
            clients = self._sessions.get(caller.session_id, set())
            clients.discard(client)
            if not clients:
                self._sessions.pop(caller.session_id, None)

    def revoked(self, session_id: str) -> None:
        """A session was signed out: close its clients (call it on the event loop)."""
        for client in list(self._sessions.get(session_id, ())):
            self._close(client, SESSION_REVOKED)

    def _close(self, client: Client, code: int) -> None:
        reason = "token expired" if code == TOKEN_EXPIRED else "session revoked"
        CLOSED.labels(reason).inc()
        closing = asyncio.create_task(client.close(code, reason))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)


def upgrade_token(request: Request) -> str:
    """The token an upgrade request carries: `Authorization: Bearer`, `?access_token=` or the session cookie."""
    authorization = request.headers.get_all("Authorization")
    if len(authorization) > 1:
        raise Unauthenticated("one Authorization header, not several", True)
    cookies: SimpleCookie = SimpleCookie()
    with contextlib.suppress(CookieError):  # a malformed cookie is as good as none
        cookies.load("; ".join(request.headers.get_all("Cookie")))
    query = {name: values[-1] for name, values in parse_qs(request.path.partition("?")[2]).items()}
    given = credentials(
        {"Authorization": authorization[0]} if authorization else {},
        {name: morsel.value for name, morsel in cookies.items()},
        query,
    )
    if given is None:
        raise Unauthenticated("sign in: /ws needs a bearer token, ?access_token= or the session cookie")
    return given[1]
