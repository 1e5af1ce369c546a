"""Commands over RabbitMQ: `command-api.commands` → the same handlers as HTTP → ack, reply or dead-letter.

One thread owns one blocking pika connection. Each message is applied in its own transaction and acked
only once that committed. A message that cannot be applied (not JSON, unknown command, invalid, not
found, version mismatch, …) is dead-lettered with its reason in a header, then acked, so the queue moves
on. With `reply_to` the sender gets `{"ok": …}`; create replies wait out CREATE_REPLY_DELAY_SECONDS in a
heap this loop pumps, so they hold no message and block no other command. When PostgreSQL or RabbitMQ
fails, unacked messages go back to the queue and the consumer starts over after a capped backoff; the
quorum queue's delivery limit ends any loop.

Run it with `python -m command_api.consumer`.
"""

import contextlib
import heapq
import itertools
import json
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, assert_never

import pika
import psycopg
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError
from pika.spec import Basic
from prometheus_client import Counter, Gauge, Histogram
from psycopg import Connection
from psycopg_pool import ConnectionPool
from pydantic import ValidationError
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from command_api.errors import CommandFailed, CommandRefused, InvalidCommand, NotJson, UnknownCommand
from command_api.handlers import Command, ContactHandlers, CreateContact, DeleteContact, Origin, PatchContact
from shared.broker import COMMANDS_QUEUE, connection_parameters, dead_letter, declare_commands, declare_dead_letters
from shared.commands import COMMAND_MODELS, HEADER_FIELDS, CommandMessage, CreateCommand, DeleteCommand, UpdateCommand
from shared.db import open_pool
from shared.health import database_ready
from shared.logs import configure_logging, correlation_id, new_correlation_id
from shared.models import Contact
from shared.probe_server import serve_probes
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: The event's `source` when the message names no `app_id`: a person typed it in the console.
CONSOLE_SOURCE = "console"

MESSAGES = Counter(
    "command_consumer_messages_total",
    "Command messages taken off the queue, by outcome: applied, or the reason they were dead-lettered",
    ["outcome"],
)
REQUEUED = Counter("command_consumer_requeued_total", "Messages put back because PostgreSQL was unavailable")
HANDLE_SECONDS = Histogram("command_consumer_handle_seconds", "Time to apply one command message")
PENDING_REPLIES = Gauge("command_consumer_pending_replies", "Create replies waiting out their deferral")


class DatabaseUnavailable(Exception):
    """PostgreSQL failed under a command: put the messages back and start over later."""


@dataclass(order=True, frozen=True)
class _Reply:
    due: float
    number: int
    reply_to: str = field(compare=False)
    correlation_id: str | None = field(compare=False)
    body: bytes = field(compare=False)


class CommandConsumer:
    """Applies command messages; owns the deferred replies, which outlive a reconnect."""

    def __init__(self, handlers: ContactHandlers, settings: Settings) -> None:
        self._handlers = handlers
        self._settings = settings
        self._replies: list[_Reply] = []
        self._numbers = itertools.count()
        self.stopping = False
        self.consuming = False

    def run(self, connection: BlockingConnection) -> None:
        """Consume until asked to stop, then send the replies still owed."""
        channel = connection.channel()
        channel.confirm_delivery()  # dead letters and replies are confirmed before the original is acked
        declare_commands(channel)
        declare_dead_letters(channel)
        channel.basic_qos(prefetch_count=self._settings.command_consumer_prefetch)
        consumer_tag = channel.basic_consume(COMMANDS_QUEUE, self._on_message)
        self.consuming = True
        log.info("consuming %s", COMMANDS_QUEUE)
        try:
            while not self.stopping:
                self._pump(connection, channel)
            channel.basic_cancel(consumer_tag)
        finally:
            self.consuming = False
        while self._replies:
            self._pump(connection, channel)

    def apply(self, body: bytes, properties: pika.BasicProperties) -> tuple[CommandMessage, Contact | None]:
        """Apply one message through the handlers; returns the command and the contact it left (None if deleted)."""
        message = read_message(body_text(body, properties.content_encoding), properties.headers)
        origin = Origin(
            source_of(properties.app_id),
            correlation_id.get(),
            f"command:{message.command_id}" if message.command_id else None,
            actor_of(properties.user_id),
        )
        contact = self._handlers.handle(to_command(message), origin)
        return message, contact

    def _pump(self, connection: BlockingConnection, channel: BlockingChannel) -> None:
        wait = min(1.0, self._replies[0].due - time.monotonic()) if self._replies else 1.0
        connection.process_data_events(time_limit=max(0.0, wait))
        while self._replies and self._replies[0].due <= time.monotonic():
            self._send(channel, heapq.heappop(self._replies))
        PENDING_REPLIES.set(len(self._replies))

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        arrived = time.monotonic()
        given = properties.correlation_id  # bytes when it is not UTF-8
        usable = isinstance(given, str) and 0 < len(given) <= 200 and given.isprintable()
        token = correlation_id.set(given if usable else new_correlation_id())
        try:
            self._handle(channel, method, properties, body, arrived)
        finally:
            correlation_id.reset(token)

    def _handle(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
        arrived: float,
    ) -> None:
        try:
            with HANDLE_SECONDS.time():
                message, contact = self.apply(body, properties)
        except CommandRefused as refused:
            self._refuse(channel, method, properties, body, refused)
            return
        except psycopg.OperationalError as error:
            channel.basic_nack(method.delivery_tag, requeue=True)
            REQUEUED.inc()
            raise DatabaseUnavailable(str(error)) from error
        except Exception as error:
            log.exception("a command message failed unexpectedly")
            self._refuse(channel, method, properties, body, CommandFailed(f"{type(error).__name__}: {error}"))
            return
        channel.basic_ack(method.delivery_tag)
        MESSAGES.labels("applied").inc()
        log.info(
            "command applied",
            extra={
                "command": message.command,
                "contact_id": contact.id if contact else getattr(message, "contact_id", None),
                "version": contact and contact.version,
            },
        )
        delay = self._settings.create_reply_delay_seconds if isinstance(message, CreateCommand) else 0.0
        contact_json = contact and contact.model_dump(mode="json")
        self._reply(channel, properties, {"ok": True, "contact": contact_json}, arrived + delay)

    def _refuse(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
        refused: CommandRefused,
    ) -> None:
        reason = death_reason(refused)
        dead_letter(channel, method, properties, body, reason)
        channel.basic_ack(method.delivery_tag)
        MESSAGES.labels(refused.slug).inc()
        log.warning("command dead-lettered: %s", reason)
        self._reply(channel, properties, {"ok": False, "status": refused.status, "error": refused.problem()})

    def _reply(
        self, channel: BlockingChannel, properties: pika.BasicProperties, body: dict[str, Any], due: float = 0.0
    ) -> None:
        if not properties.reply_to:
            return
        reply = _Reply(
            due, next(self._numbers), properties.reply_to, properties.correlation_id, json.dumps(body).encode()
        )
        if due > time.monotonic():
            heapq.heappush(self._replies, reply)
        else:
            self._send(channel, reply)

    def _send(self, channel: BlockingChannel, reply: _Reply) -> None:
        """Answer on the default exchange; a sender that has gone away simply misses its reply."""
        properties = pika.BasicProperties(
            content_type="application/json", correlation_id=reply.correlation_id, app_id="command-api"
        )
        channel.basic_publish("", reply.reply_to, reply.body, properties)


def body_text(body: bytes, content_encoding: str | bytes | None) -> str:
    """The body as text: in the character set its `content_encoding` names (as kombu and Spring AMQP use that
    property), else in UTF-8, -16 or -32 as the first bytes of JSON tell them apart; without a BOM."""
    encoding = content_encoding or json.detect_encoding(body)
    if not isinstance(encoding, str):
        raise NotJson(f"content_encoding {encoding!r} names no character set")
    try:
        return body.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise NotJson(f"the body is not text in {encoding!r}: {error.reason} at byte {error.start}") from None
    except (LookupError, ValueError):  # unknown, or bytes to bytes (gzip, zlib), or a NUL in the name
        raise NotJson(f"content_encoding {encoding!r} names no character set") from None


def source_of(app_id: str | bytes | None) -> str:
    """The event's `source`: the sender's `app_id` (at most 100 characters), or `console` when it gives none."""
    source = app_id.strip()[:100] if isinstance(app_id, str) else app_id
    if not source:
        return CONSOLE_SOURCE
    if isinstance(source, bytes) or not source.isprintable():
        raise InvalidCommand(
            f"app_id {app_id!r} cannot be the event's source",
            [{"field": "app_id", "message": "must be printable UTF-8 text"}],
        )
    return source


def actor_of(user_id: str | bytes | None) -> dict[str, object] | None:
    """The event's `actor`: the message's `user_id`, which RabbitMQ refuses unless it is the sender's login
    (the login is no user of ours, so the actor has no id); None when the message has none."""
    if not user_id:
        return None
    if isinstance(user_id, bytes) or not user_id.isprintable():
        raise InvalidCommand(
            f"user_id {user_id!r} cannot be the event's actor",
            [{"field": "user_id", "message": "must be printable UTF-8 text"}],
        )
    return {"id": None, "name": user_id}


def read_message(body: str | bytes, headers: Mapping[str, Any] | None) -> CommandMessage:
    """The command in a message body (text, or UTF-8), with any envelope field the sender gave as a header instead."""
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, a number of over 4,300 digits, too deep
        raise NotJson(f"the body is not valid JSON: {error}") from None
    if not isinstance(fields, dict):
        raise InvalidCommand("a command is a JSON object", [{"field": "body", "message": "expected an object"}])
    for name in HEADER_FIELDS:
        value = (headers or {}).get(name)
        if value is None:
            continue
        text = (value.decode(errors="replace") if isinstance(value, bytes) else str(value)).strip()
        if name in fields and str(fields[name]).strip() != text:
            raise InvalidCommand(
                f"{name} is given twice, differently, in the body and in a header",
                [{"field": name, "message": "the body and the header disagree"}],
            )
        fields.setdefault(name, text)
    given = fields.get("command")
    command = given.strip().lower() if isinstance(given, str) else None
    model = COMMAND_MODELS.get(command) if command else None
    if model is None:
        raise UnknownCommand(f"unknown command {given!r}: the commands are create, update and delete")
    try:
        return model.model_validate({**fields, "command": command})
    except ValidationError as error:
        raise InvalidCommand.from_validation_error(error) from None


def to_command(message: CommandMessage) -> Command:
    """The handler command a message asks for: `update` is a merge patch of `data`."""
    match message:
        case CreateCommand():
            return CreateContact(message.data)
        case UpdateCommand():
            return PatchContact(message.contact_id, message.data, message.expected_version)
        case DeleteCommand():
            return DeleteContact(message.contact_id, message.expected_version)
        case _:
            assert_never(message)


def death_reason(refused: CommandRefused) -> str:
    """The dead letter's `x-death-reason`: the slug, what went wrong, and each field's error."""
    fields = "; ".join(f"{error['field']}: {error['message']}" for error in refused.errors or [])
    return f"{refused.slug}: {refused.detail}" + (f" ({fields})" if fields else "")


def consume_once(
    consumer: CommandConsumer, pool: ConnectionPool[Connection[dict[str, Any]]], settings: Settings
) -> None:
    if not database_ready(pool):
        raise DatabaseUnavailable("PostgreSQL is not answering")
    connection = pika.BlockingConnection(connection_parameters(settings.amqp_url, "command-api.commands"))
    try:
        consumer.run(connection)
    finally:
        with contextlib.suppress(AMQPError):  # closing returns every unacked message to the queue
            if connection.is_open:
                connection.close()


def consume_forever(
    consumer: CommandConsumer, pool: ConnectionPool[Connection[dict[str, Any]]], settings: Settings
) -> None:
    """Consume until stopped; after a lost connection or database, back off and start over."""
    retrying = Retrying(
        retry=retry_if_exception_type((AMQPError, DatabaseUnavailable, OSError)),
        stop=lambda _state: consumer.stopping,
        wait=wait_random_exponential(multiplier=0.2, max=settings.command_consumer_max_backoff_seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
        retry_error_callback=lambda _state: None,
    )
    retrying(consume_once, consumer, pool, settings)


def main() -> None:
    """The composition root: settings, logs, pool, probes, then the loop until SIGTERM or Ctrl-C."""
    settings = get_settings()
    configure_logging("command-consumer", settings.log_level)
    pool = open_pool(settings, name="command-consumer")
    consumer = CommandConsumer(ContactHandlers(pool), settings)

    def stop(_signal: int, _frame: FrameType | None) -> None:
        consumer.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serve_probes(
        settings.command_consumer_port, lambda: {"database": database_ready(pool), "broker": consumer.consuming}
    )
    try:
        consume_forever(consumer, pool, settings)
    finally:
        pool.close()


if __name__ == "__main__":
    main()
