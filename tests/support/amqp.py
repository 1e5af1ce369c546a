"""A tap on `contacts.events`: an exclusive queue of the test's own that collects every event; the outbox behind it."""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from shared.broker import EVENTS_EXCHANGE, declare_topology
from tests.support.processes import TIMEOUT_FACTOR, wait_until

OnMessage = Callable[[BlockingChannel, Any, pika.BasicProperties, bytes], None]


def unpublished(database_url: str) -> int:
    """How many outbox events the relay has not had confirmed yet."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Delivered:
    routing_key: str
    properties: pika.BasicProperties
    body: dict[str, Any]


class BrokerClient:
    """A test's own blocking connection to RabbitMQ, pumped only while the test waits on it."""

    def __init__(self, amqp_url: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._consumed: list[tuple[BlockingChannel, str]] = []
        self._markers: set[str] = set()

    def drain(self, timeout: float = 10.0) -> None:
        """Take in every message the broker had put in this client's queues before now.

        A marker sent to the end of each queue comes back behind them, since a queue keeps its order. So once a
        publisher has its confirms (the relay marked its events published, a consumer acked the command it
        dead-lettered or answered), everything it published here has arrived when `drain` returns.
        """
        for channel, queue in self._consumed:
            marker = f"drain-{uuid.uuid4()}"
            self._markers.add(marker)
            channel.basic_publish("", queue, b"", pika.BasicProperties(message_id=marker))
        self._pump_until(lambda: not self._markers, timeout, "the markers behind what was queued")

    def waiting(self, queue: str) -> int:
        """How many messages wait in `queue`, ready for a consumer (the broker's own count, not the console's)."""
        channel = self._connection.channel()
        try:
            return int(channel.queue_declare(queue, passive=True).method.message_count)
        finally:
            channel.close()

    def watch(self, seconds: float) -> None:
        """Keep taking messages in for `seconds` (scaled): the window in which a test sees that nothing happens."""
        deadline = time.monotonic() + seconds * TIMEOUT_FACTOR
        while time.monotonic() < deadline:
            self._connection.process_data_events(time_limit=0.05)

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()

    def _consume(self, channel: BlockingChannel, queue: str, on_message: OnMessage) -> None:
        """Consume `queue` with `on_message`, which never sees the markers of `drain`."""

        def deliver(channel: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
            if properties.message_id in self._markers:
                self._markers.discard(properties.message_id)
            else:
                on_message(channel, method, properties, body)

        channel.basic_consume(queue, deliver, auto_ack=True)
        self._consumed.append((channel, queue))

    def _pump_until(self, condition: Callable[[], bool], timeout: float, what: str, fail: bool = True) -> None:
        deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
        while not condition():
            if time.monotonic() > deadline:
                if fail:
                    raise AssertionError(f"timed out waiting for {what}")
                return
            self._connection.process_data_events(time_limit=0.05)


class EventTap(BrokerClient):
    def __init__(self, amqp_url: str) -> None:
        super().__init__(amqp_url)
        self._channel = self._connection.channel()
        declare_topology(self._channel)
        self._queue = self._channel.queue_declare(queue="", exclusive=True).method.queue
        self._channel.queue_bind(queue=self._queue, exchange=EVENTS_EXCHANGE, routing_key="#")
        self.events: list[Delivered] = []
        self._consume(self._channel, self._queue, self._on_message)

    def _on_message(self, _channel: Any, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.events.append(Delivered(method.routing_key, properties, json.loads(body)))

    def wait_for(self, count: int, where: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> list[Delivered]:
        """Wait until `count` events whose body satisfies `where` arrived; returns all such events so far."""

        def found() -> list[Delivered]:
            return [event for event in self.events if where(event.body)]

        self._pump_until(lambda: len(found()) >= count, timeout, f"{count} events", fail=False)
        return found()

    def relayed(self, database_url: str, timeout: float = 30.0) -> None:
        """Wait until the relay has had every committed event confirmed, then take them in: all have arrived."""
        wait_until(lambda: unpublished(database_url) == 0, timeout, message="the relay to publish every event")
        self.drain()

    def of_contact(self, contact_id: int, count: int, timeout: float = 10.0) -> list[Delivered]:
        return self.wait_for(count, lambda body: body["contact_id"] == contact_id, timeout)
