"""What the notifier's tests need: a notifier process, WebSocket clients, and events published as the relay does."""

import base64
import json
import os
import socket
import struct
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import pika
import psycopg
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.sync.client import ClientConnection, connect

from shared.broker import EVENTS_EXCHANGE
from tests.support.amqp import BrokerClient
from tests.support.identity import TOKENS
from tests.support.processes import TIMEOUT_FACTOR, ServiceProcess, free_port
from tests.support.stack import Launch


def start_notifier(launch: Launch, name: str = "notifier", **env: Any) -> tuple[str, ServiceProcess]:
    """A notifier subscribed to the stream (`/readyz`); returns its base URL (http) and process."""
    port = free_port()
    process = launch(name, ["python", "-m", "notifier"], "/readyz", port=port, notifier_port=port, **env)
    return f"http://127.0.0.1:{port}", process


def listener_token(
    seconds: float = 43_200, name: str = "Live Client", user_id: int = 10**12, role: str = "viewer"
) -> str:
    """A token (a viewer's unless told) signed with this run's key, for a session of its own that no one has
    revoked.

    The notifier checks a token's signature, expiry and session without reading the users table, so this
    user and session need no rows (tests of sign-out use `tests.support.identity.token_for`).
    """
    return TOKENS.issue(
        user_id=user_id,
        username=f"live-client-{user_id}",
        name=name,
        role=role,
        session_id=str(uuid.uuid4()),
        expires_at=time.time() + seconds,
    )


#: The token every client of the notifier's tests signs in with unless it is given another (or None).
LISTENER_TOKEN = listener_token()


def ws_url(base: str, query: str = "", token: str | None = LISTENER_TOKEN) -> str:
    """The notifier's `/ws` at `base` (http), with `query`, signed in with `?access_token=` as the web app
    is, unless `token` is None."""
    signed_in = "&".join(part for part in (query, token and urlencode({"access_token": token})) if part)
    return base.replace("http://", "ws://") + "/ws" + (f"?{signed_in}" if signed_in else "")


class LiveClient:
    """A WebSocket client of `/ws` (see `ws_url`) that reads JSON frames with a timeout."""

    def __init__(self, base: str, query: str = "", token: str | None = LISTENER_TOKEN, **options: Any) -> None:
        self.connection: ClientConnection = connect(ws_url(base, query, token), open_timeout=10, legacy=True, **options)

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        return dict(json.loads(self.connection.recv(timeout=timeout * TIMEOUT_FACTOR)))

    def hello(self) -> dict[str, Any]:
        greeting = self.receive()
        assert greeting["type"] == "hello", greeting
        return greeting

    def receive_until(self, seq: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every frame up to the event at `seq` or past it."""
        deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1].get("seq", -1) < seq or frames[-1]["type"] in ("hello", "resync"):
            frames.append(self.receive(max(0.01, deadline - time.monotonic())))
        return frames

    def close_frame(self, timeout: float = 30.0) -> Close | None:
        """Read on until the connection closes; the close frame the server sent, if one arrived."""
        try:
            while True:
                self.connection.recv(timeout=timeout * TIMEOUT_FACTOR)
        except ConnectionClosed as closed:
            return closed.rcvd

    def send(self, message: str | bytes | dict[str, Any]) -> None:
        self.connection.send(json.dumps(message) if isinstance(message, dict) else message)

    def close(self) -> None:
        self.connection.close()


class RelayLike(BrokerClient):
    """Publishes events to `contacts.events` as the relay does: seq taken from `relay_state`, epoch header."""

    def __init__(self, database_url: str, amqp_url: str) -> None:
        super().__init__(amqp_url)
        self._database_url = database_url
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self.bodies: dict[int, bytes] = {}

    def publish(self, count: int = 1, padding: int = 0) -> list[int]:
        """Number `count` events and publish them in seq order; returns their seqs."""
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            row = conn.execute(
                "UPDATE relay_state SET last_seq = last_seq + %s RETURNING epoch::text, last_seq", (count,)
            ).fetchone()
        assert row is not None
        epoch, last = row
        seqs = list(range(last - count + 1, last + 1))
        for seq in seqs:
            self.bodies[seq] = event_body(seq, padding)
            self.publish_raw(self.bodies[seq], {"epoch": epoch, "correlation_id": uuid.uuid4().hex})
        return seqs

    def publish_raw(self, body: bytes, headers: dict[str, Any]) -> None:
        properties = pika.BasicProperties(content_type="application/json", headers=headers)
        self._channel.basic_publish(EVENTS_EXCHANGE, "contact.updated", body, properties)


#: Synthetic events name contacts far beyond real ids, so the history worker never confuses the two.
SYNTHETIC_CONTACT_IDS = 10**15


def event_body(seq: int, padding: int = 0) -> bytes:
    now = datetime.now(UTC).isoformat()
    contact = {
        "id": SYNTHETIC_CONTACT_IDS + seq,
        "first_name": "Ada",
        "last_name": "Lovelace" + "x" * padding,
        "email": f"ada.{seq}@example.com",
        "phone": "+44 20 7946 0958",
        "version": 2,
        "created_at": now,
        "updated_at": now,
    }
    return json.dumps(
        {
            "type": "contact.updated",
            "seq": seq,
            "event_id": str(uuid.uuid4()),
            "contact_id": SYNTHETIC_CONTACT_IDS + seq,
            "version": 2,
            "contact": contact,
            "changed_fields": ["last_name"],
            "source": "test",
            "at": now,
        }
    ).encode()


class RawClient:
    """A WebSocket client on a bare socket, to send what no library would: any handshake, any frame."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self._socket = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
        self._socket.settimeout(10 * TIMEOUT_FACTOR)
        self._buffer = b""

    def request(
        self,
        target: bytes = b"/ws",
        headers: list[tuple[bytes, bytes]] | None = None,
        method: bytes = b"GET",
        version: bytes = b"HTTP/1.1",
    ) -> int | None:
        """Send a handshake (a valid one unless told otherwise); the reply's status, None if closed unanswered."""
        if headers is None:
            headers = handshake_headers()
        lines = [b" ".join((method, target, version)), *(name + b": " + value for name, value in headers)]
        self._socket.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        return self.status()

    def status(self) -> int | None:
        """The status of the HTTP reply, its headers read; None when the server closed without one."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._read():
                return None
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return int(head.split(b" ", 2)[1])

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        """One masked frame, as a client sends it, whatever its opcode and payload."""
        length = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if length < 126:
            head += bytes([0x80 | length])
        elif length < 2**16:
            head += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        self._socket.sendall(head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload)))

    def answer(self) -> tuple[int, bytes] | None:
        """The next frame from the server (opcode, payload), pings answered on the way; None once closed."""
        while True:
            while len(self._buffer) < 2 or len(self._buffer) < _frame_length(self._buffer):
                if not self._read():
                    return None
            length = _frame_length(self._buffer)
            frame, self._buffer = self._buffer[:length], self._buffer[length:]
            opcode, payload = frame[0] & 0x0F, frame[length - _payload_length(frame) :]
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            return opcode, payload

    def close(self) -> None:
        self._socket.close()

    def _read(self) -> bool:
        try:
            chunk = self._socket.recv(65536)
        except ConnectionResetError:
            chunk = b""
        self._buffer += chunk
        return bool(chunk)


def handshake_headers(host: bytes = b"127.0.0.1", token: str | None = LISTENER_TOKEN) -> list[tuple[bytes, bytes]]:
    """A valid upgrade request's headers, signed in with `Authorization: Bearer` unless `token` is None."""
    key = base64.b64encode(os.urandom(16))
    signed_in = [(b"Authorization", f"Bearer {token}".encode())] if token else []
    return [
        (b"Host", host),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", key),
        (b"Sec-WebSocket-Version", b"13"),
        *signed_in,
    ]


def _payload_length(frame: bytes) -> int:
    short = frame[1] & 0x7F
    if short == 126:
        return int(struct.unpack("!H", frame[2:4])[0]) if len(frame) >= 4 else 2**16
    if short == 127:
        return int(struct.unpack("!Q", frame[2:10])[0]) if len(frame) >= 10 else 2**64
    return short


def _frame_length(buffer: bytes) -> int:
    """The length of the server frame at the start of `buffer` (servers do not mask)."""
    short = buffer[1] & 0x7F
    header = 2 + (2 if short == 126 else 8 if short == 127 else 0)
    return header + _payload_length(buffer)
