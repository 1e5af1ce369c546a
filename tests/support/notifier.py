"""What the notifier's tests need: a notifier process, WebSocket clients, and events published as the relay does."""

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.sync.client import ClientConnection, connect

from shared.broker import EVENTS_EXCHANGE
from tests.support.amqp import BrokerClient
from tests.support.processes import TIMEOUT_FACTOR, ServiceProcess, free_port
from tests.support.stack import Launch


def start_notifier(launch: Launch, name: str = "notifier", **env: Any) -> tuple[str, ServiceProcess]:
    """A notifier subscribed to the stream (`/readyz`); returns its base URL (http) and process."""
    port = free_port()
    process = launch(name, ["python", "-m", "notifier"], "/readyz", port=port, notifier_port=port, **env)
    return f"http://127.0.0.1:{port}", process


class LiveClient:
    """A WebSocket client of `/ws` that reads JSON frames with a timeout."""

    def __init__(self, base: str, query: str = "", **options: Any) -> None:
        self.connection: ClientConnection = connect(
            base.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else ""),
            open_timeout=10,
            legacy=True,
            **options,
        )

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
