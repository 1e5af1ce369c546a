"""Who is calling (SPEC §8): signed tokens, the sessions signed out since they were signed, and where a
request carries its token.

A token is a JWT (HS256) that names the user, their role and their session. Checking one needs no
database round trip: its signature and expiry are checked here, and whether its session was signed out
is a look-up in `Revocations`, a set each process keeps of the sessions revoked before they end. The
set is read from PostgreSQL at start and kept fresh by `LISTEN identity`: whoever revokes a session
runs `NOTIFY identity, '<session id>'` in the same transaction, so every instance hears of it as the
revocation commits.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import jwt
import psycopg
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from shared.problems import Problem
from shared.settings import MAX_BACKOFF_SECONDS, Settings

log = logging.getLogger(__name__)

#: The roles, each allowed what the one before it is, and more.
ROLES = ("viewer", "editor", "admin")
ISSUER = "contacts-live"
#: The session cookie the web app signs in with; it holds a token whose expiry is the session's end.
SESSION_COOKIE = "contacts_session"
#: The channel revocations are announced on; each payload is a session id.
CHANNEL = "identity"
#: The OpenAPI security schemes of every HTTP service: either credential will do (SPEC §8).
OPENAPI_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "set by POST /api/session; a write with it must come from the app's own Origin",
    },
}
OPENAPI_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
_ALGORITHM = "HS256"
_DECODED_TOKENS = 4096
_CLAIMS = ("sub", "name", "username", "role", "sid", "iat", "exp", "iss")

#: The sessions revoked before their end, as a process loads them at start and after a lost connection.
_REVOKED_SESSIONS = """
    SELECT id::text, extract(epoch FROM expires_at) FROM sessions WHERE revoked_at IS NOT NULL AND expires_at > now()"""
#: How often the listener forgets the revocations of sessions that have ended and checks its connection.
_SWEEP_SECONDS = 30.0


class Unauthenticated(Problem):
    """No credentials, or none we accept: 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750)."""

    status = 401
    title = "Unauthenticated"
    slug = "unauthenticated"

    def __init__(self, detail: str, invalid_token: bool = False) -> None:
        super().__init__(detail)
        self.invalid_token = invalid_token

    @property
    def challenge(self) -> str:
        """The `WWW-Authenticate` value: it says `invalid_token` when a token was given and refused."""
        return 'Bearer error="invalid_token"' if self.invalid_token else "Bearer"


class Forbidden(Problem):
    """A caller whose role does not allow the request, or a cookie write from a foreign origin: 403."""

    status = 403
    title = "Forbidden"
    slug = "forbidden"


class IdentityUnavailable(Problem):
    """Revocations not loaded yet (PostgreSQL not answering since the process started): 503, retry."""

    status = 503
    title = "Service unavailable"
    slug = "unavailable"


@dataclass(frozen=True)
class Caller:
    """The person or service a verified token names."""

    id: int
    username: str
    name: str
    role: str
    session_id: str
    expires_at: float  # the token's expiry, seconds since the epoch

    def actor(self) -> dict[str, object]:
        """Who made a change, as events and history versions record it."""
        return {"id": self.id, "name": self.name}

    def may(self, role: str) -> bool:
        """Whether this caller has `role` or a role above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


def key_id(key: bytes) -> str:
    """The `kid` of tokens signed with `key`: it names the key without giving it away."""
    return hashlib.sha256(key).hexdigest()[:8]


class Tokens:
    """Signs tokens with the first of IDENTITY_SIGNING_KEYS and verifies them with any of them."""

    def __init__(self, settings: Settings) -> None:
        keys = [key.get_secret_value().encode() for key in settings.identity_signing_keys]
        if not keys or not all(keys):
            raise ValueError("IDENTITY_SIGNING_KEYS must name at least one key (a JSON list of secrets)")
        self._signing_key = keys[0]
        self._keys = {key_id(key): key for key in keys}
        # A client sends one token for many requests: each is decoded and its signature checked once
        # (~100 µs of pure Python), then found here (~1 µs). Only tokens that verified are kept.
        self._decoded = lru_cache(maxsize=_DECODED_TOKENS)(self._decode)

    def issue(self, *, user_id: int, username: str, name: str, role: str, session_id: str, expires_at: float) -> str:
        claims = {
            "sub": str(user_id),
            "name": name,
            "username": username,
            "role": role,
            "sid": session_id,
            "iat": int(time.time()),
            "exp": int(expires_at),
            "iss": ISSUER,
        }
        return jwt.encode(claims, self._signing_key, _ALGORITHM, headers={"kid": key_id(self._signing_key)})

    def verify(self, token: str) -> Caller:
        """The caller a token names, if one of our keys signed it and it has not expired."""
        caller = self._decoded(token)
        if caller.expires_at <= time.time():  # decoded before it expired
            raise Unauthenticated("the token has expired", True)
        return caller

    def _decode(self, token: str) -> Caller:
        try:
            key = self._keys.get(jwt.get_unverified_header(token).get("kid", ""))
            if key is None:
                raise Unauthenticated("the token is signed with a key this service does not hold", True)
            claims = jwt.decode(
                token, key, [_ALGORITHM], issuer=ISSUER, options={"require": list(_CLAIMS), "verify_iat": False}
            )
            caller = Caller(
                int(claims["sub"]),
                str(claims["username"]),
                str(claims["name"]),
                str(claims["role"]),
                str(claims["sid"]),
                float(claims["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", True) from None
        except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
            raise Unauthenticated("the token is not valid", True) from None
        if caller.role not in ROLES:
            raise Unauthenticated("the token names no role of ours", True)
        return caller


class Revocations:
    """The sessions revoked before their end, kept fresh by `LISTEN identity` (see the module's docstring).

    While its connection is lost the set stays as it was, and is read anew once it is back; before it
    was read the first time, `revoked` raises `IdentityUnavailable` rather than let a revoked token in.
    `on_revoked` is called, in the listener's thread, with each session id it learns of.
    """

    def __init__(self, settings: Settings) -> None:
        self._session_seconds = settings.session_seconds
        self._ends: dict[str, float] = {}  # session id -> when it ends (seconds since the epoch)
        self._loaded = threading.Event()
        self.on_revoked: Callable[[str], None] | None = None

    def start(self, database_url: str, wait_seconds: float = 5.0) -> None:
        """Listen in a daemon thread (a greenlet under gevent); wait up to `wait_seconds` for the first load."""
        threading.Thread(target=self._listen_forever, args=(database_url,), name="revocations", daemon=True).start()
        self._loaded.wait(wait_seconds)

    def revoked(self, session_id: str) -> bool:
        if not self._loaded.is_set():
            raise IdentityUnavailable("the sessions signed out are not known yet; retry shortly")
        return session_id in self._ends

    def _listen_forever(self, database_url: str) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_random_exponential(multiplier=0.2, max=MAX_BACKOFF_SECONDS),
            before_sleep=before_sleep_log(log, logging.WARNING),
        )
        retrying(self._listen, database_url)

    def _listen(self, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")  # before the load: a revocation committed between them is heard
            rows = conn.execute(_REVOKED_SESSIONS).fetchall()
            self._learn({str(session_id): float(ends) for session_id, ends in rows})
            self._loaded.set()
            while True:
                for notify in conn.notifies(timeout=_SWEEP_SECONDS):
                    self._learn({notify.payload: time.time() + self._session_seconds})
                now = time.time()
                self._ends = {session_id: ends for session_id, ends in self._ends.items() if ends > now}
                conn.execute("SELECT 1")  # a connection that died quietly is found out here

    def _learn(self, ends: dict[str, float]) -> None:
        new = [session_id for session_id in ends if session_id not in self._ends]
        self._ends.update(ends)
        for session_id in new:
            if self.on_revoked is not None:
                self.on_revoked(session_id)


@dataclass(frozen=True)
class Identity:
    """What an HTTP service needs to know its callers: tokens, revocations, and the app's own origins."""

    tokens: Tokens
    revocations: Revocations
    app_origins: frozenset[str]

    @classmethod
    def start(cls, settings: Settings, database_url: str) -> "Identity":
        """Build it and start listening for revocations; in a composition root, after fork."""
        revocations = Revocations(settings)
        revocations.start(database_url)
        return cls(Tokens(settings), revocations, frozenset(settings.app_origins))

    def caller(self, token: str) -> Caller:
        """The caller of a token that is valid and whose session was not signed out."""
        caller = self.tokens.verify(token)
        if self.revocations.revoked(caller.session_id):
            raise Unauthenticated("this session was signed out", True)
        return caller


class Fields(Protocol):
    """Named values to look up: a mapping, Flask's headers, cookies or query, the websockets library's headers."""

    def get(self, key: str, /) -> str | None: ...


def credentials(headers: Fields, cookies: Fields, query: Fields | None = None) -> tuple[str, str] | None:
    """The token a request carries, and how: `Authorization: Bearer` first, then `?access_token=` (given
    `query`, for WebSocket clients that cannot set headers), then the session cookie."""
    scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "bearer", token.strip()
    given = query.get("access_token") if query is not None else None
    if given:
        return "bearer", given
    cookie = cookies.get(SESSION_COOKIE)
    return ("cookie", cookie) if cookie else None


def required_role(method: str, path: str) -> str | None:
    """The least role a request needs (SPEC §8); None for those anyone may make: the probes, the
    documents, and signing in."""
    if not (path == "/api" or path.startswith("/api/")):
        return None
    if path == "/api/session":
        return None if method == "POST" else "viewer"
    if path == "/api/users" or path.startswith("/api/users/"):
        return "admin"
    return "viewer" if method in ("GET", "HEAD", "OPTIONS") else "editor"
