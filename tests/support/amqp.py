"""A tap on `contacts.events`: an exclusive queue of the test's own that collects every event."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika

from shared.broker import EVENTS_EXCHANGE, declare_topology
from tests.support.processes import TIMEOUT_FACTOR


@dataclass(frozen=True)
class Delivered:
    routing_key: str
    properties: pika.BasicProperties
    body: dict[str, Any]


class BrokerClient:
    """A test's own blocking connection to RabbitMQ, pumped only while the test waits on it."""

    def __init__(self, amqp_url: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))

    def settle(self, seconds: float = 0.5) -> None:
        """Keep the connection's I/O going a little longer, to see anything that should (not) come."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._connection.process_data_events(time_limit=0.05)

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()


class EventTap(BrokerClient):
    def __init__(self, amqp_url: str) -> None:
        super().__init__(amqp_url)
        self._channel = self._connection.channel()
        declare_topology(self._channel)
        self._queue = self._channel.queue_declare(queue="", exclusive=True).method.queue
        self._channel.queue_bind(queue=self._queue, exchange=EVENTS_EXCHANGE, routing_key="#")
        self.events: list[Delivered] = []
        self._channel.basic_consume(self._queue, self._on_message, auto_ack=True)

    def _on_message(self, _channel: Any, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.events.append(Delivered(method.routing_key, properties, json.loads(body)))

    def wait_for(self, count: int, where: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> list[Delivered]:
        """Wait until `count` events whose body satisfies `where` arrived; returns all such events so far."""
        deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
        while True:
            found = [event for event in self.events if where(event.body)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self._connection.process_data_events(time_limit=0.05)

    def of_contact(self, contact_id: int, count: int, timeout: float = 10.0) -> list[Delivered]:
        return self.wait_for(count, lambda body: body["contact_id"] == contact_id, timeout)
