"""Sending commands as another service does (AMQP) and as a person does (the management console's API)."""

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pika
import requests

from shared.broker import COMMANDS_EXCHANGE, DEAD_LETTER_EXCHANGE, declare_topology
from tests.support.amqp import BrokerClient
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port
from tests.support.stack import Launch


def start_command_consumer(launch: Launch, name: str = "command-consumer", **env: Any) -> ServiceProcess:
    port = free_port()
    return launch(name, ["python", "-m", "command_api.consumer"], port=port, command_consumer_port=port, **env)


class CommandBus(BrokerClient):
    """One connection of a test's own: publishes commands with confirms, collects replies and dead letters.

    Replies come to an exclusive queue (`reply_to`); every dead letter from now on to another exclusive
    queue bound to `contacts.dead-letter`.
    """

    def __init__(self, amqp_url: str, app_id: str | None = "test-service", user_id: str | None = None) -> None:
        self._app_id = app_id
        self._user_id = user_id  # RabbitMQ closes the channel unless it is the login of `amqp_url`
        super().__init__(amqp_url)
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        declare_topology(self._channel)
        self.reply_queue = self._channel.queue_declare(queue="", exclusive=True).method.queue
        self.replies: dict[str, dict[str, Any]] = {}
        self.reply_properties: dict[str, pika.BasicProperties] = {}
        self.reply_times: dict[str, float] = {}
        self._consume(self._channel, self.reply_queue, self._on_reply)
        dead = self._channel.queue_declare(queue="", exclusive=True).method.queue
        self._channel.queue_bind(queue=dead, exchange=DEAD_LETTER_EXCHANGE, routing_key="")
        self.dead_letters: list[tuple[pika.BasicProperties, bytes]] = []
        self._consume(self._channel, dead, self._on_dead_letter)

    def send(self, body: dict[str, Any] | bytes, *, reply: bool = False, headers: dict[str, Any] | None = None) -> str:
        """Publish to `contacts.commands`; returns the message's correlation id."""
        correlation = uuid.uuid4().hex
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            app_id=self._app_id,
            user_id=self._user_id,
            correlation_id=correlation,
            reply_to=self.reply_queue if reply else None,
            headers=headers,
        )
        self._channel.basic_publish(COMMANDS_EXCHANGE, "", payload, properties, mandatory=True)
        return correlation

    def reply_to(self, correlation: str, timeout: float = 10.0) -> dict[str, Any]:
        self._pump_until(lambda: correlation in self.replies, timeout, f"the reply to {correlation}")
        return self.replies[correlation]

    def dead_letters_where(
        self, where: Callable[[pika.BasicProperties, bytes], bool], count: int, timeout: float = 10.0
    ) -> list[tuple[pika.BasicProperties, bytes]]:
        """Wait for `count` dead letters matching `where`; returns all that match so far."""

        def found() -> list[tuple[pika.BasicProperties, bytes]]:
            return [letter for letter in self.dead_letters if where(*letter)]

        self._pump_until(lambda: len(found()) >= count, timeout, f"{count} dead letters", fail=False)
        return found()

    def _on_reply(self, _channel: Any, _method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.replies[properties.correlation_id] = json.loads(body)
        self.reply_properties[properties.correlation_id] = properties
        self.reply_times[properties.correlation_id] = time.monotonic()

    def _on_dead_letter(self, _channel: Any, _method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.dead_letters.append((properties, body))


class Console:
    """What an operator does in the RabbitMQ management console, through the HTTP API the console itself calls."""

    def __init__(self, management_url: str, vhost: str, user: str, password: str) -> None:
        self._api = management_url + "/api"
        self._vhost = quote(vhost, safe="")
        self._session = requests.Session()
        self._session.auth = (user, password)

    @classmethod
    def of(cls, infra: Infra) -> "Console":
        """The console of this test run's vhost, as the broker user of the run."""
        return cls(infra.management_url, infra.vhost, infra.amqp_user, infra.amqp_password)

    def publish(
        self, exchange: str, payload: str, headers: dict[str, str] | None = None, routing_key: str = ""
    ) -> None:
        """The "Publish message" form: a typed payload, no properties but the headers a person typed."""
        properties: dict[str, Any] = {"headers": headers} if headers else {}
        reply = self._session.post(
            f"{self._api}/exchanges/{self._vhost}/{quote(exchange, safe='')}/publish",
            json={
                "properties": properties,
                "routing_key": routing_key,
                "payload": payload,
                "payload_encoding": "string",
            },
            timeout=10,
        )
        reply.raise_for_status()
        assert reply.json() == {"routed": True}

    def get_messages(self, queue: str, count: int) -> list[dict[str, Any]]:
        """The "Get messages" button, with the console's default ack mode: the messages go back to the queue."""
        reply = self._session.post(
            f"{self._api}/queues/{self._vhost}/{quote(queue, safe='')}/get",
            json={"count": count, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50_000},
            timeout=30,
        )
        reply.raise_for_status()
        return list(reply.json())
