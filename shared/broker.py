"""RabbitMQ names that are part of the public contract, and their idempotent declaration."""

import asyncio
import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import pika
import pika.data
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel
from pika.spec import Basic

EVENTS_EXCHANGE = "contacts.events"
PRESENCE_EXCHANGE = "contacts.presence"  # fanout, transient: the notifiers' presence (notifier/presence_bus.py)
COMMANDS_EXCHANGE = "contacts.commands"
COMMANDS_QUEUE = "command-api.commands"
HISTORY_QUEUE = "history-worker.events"
DEAD_LETTER_EXCHANGE = "contacts.dead-letter"
DEAD_LETTER_QUEUE = "contacts.dead-letter"

#: How many times a quorum queue redelivers a message before dead-lettering it.
DELIVERY_LIMIT = 5

#: Header naming why a message was dead-lettered by one of our consumers.
DEATH_REASON_HEADER = "x-death-reason"


def quorum_queue_arguments() -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


_pika_decode_value = pika.data.decode_value


def _decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
    """pika's decoder of a header value, made faithful and total: a double or a float stays a float (pika
    truncates it to an integer, so the console's 1.5 read as 1), and a timestamp beyond Python's dates stays
    its seconds (pika raises, which loses the connection on every redelivery of the message)."""
    kind = encoded[offset : offset + 1]
    if kind == b"d":
        return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
    if kind == b"f":
        return struct.unpack_from(">f", encoded, offset + 1)[0], offset + 5
    if kind == b"T":
        seconds = struct.unpack_from(">Q", encoded, offset + 1)[0]
        try:
            return datetime.fromtimestamp(seconds, UTC), offset + 9
        except (OverflowError, ValueError, OSError):
            return seconds, offset + 9
    decoded: tuple[Any, int] = _pika_decode_value(encoded, offset)
    return decoded


pika.data.decode_value = _decode_value  # decode_table and arrays look it up here, for every connection of ours


def _writable(value: Any) -> Any:
    """A header value as pika can write it again: a float, or an integer beyond 64 bits, as its text."""
    if isinstance(value, dict):
        return {key: _writable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_writable(item) for item in value]
    if isinstance(value, float) or (isinstance(value, int) and not -(2**63) <= value < 2**63):
        return str(value)
    return value


class _Channel(Protocol):
    """The declaring half of pika's BlockingChannel."""

    def exchange_declare(self, exchange: str, exchange_type: str, durable: bool) -> Any: ...
    def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any] | None = None) -> Any: ...
    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None) -> Any: ...


def declare_dead_letters(channel: _Channel) -> None:
    """`contacts.dead-letter` and its queue: where both consumers send what they cannot process."""
    channel.exchange_declare(exchange=DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(queue=DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue=DEAD_LETTER_QUEUE, exchange=DEAD_LETTER_EXCHANGE, routing_key="")


def declare_events(channel: _Channel) -> None:
    """`contacts.events` and the history worker's queue on it: the relay declares them before it publishes
    (an event no queue takes is refused), the history worker before it consumes."""
    channel.exchange_declare(exchange=EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(queue=HISTORY_QUEUE, durable=True, arguments=quorum_queue_arguments())
    channel.queue_bind(queue=HISTORY_QUEUE, exchange=EVENTS_EXCHANGE, routing_key="contact.#")


def declare_commands(channel: _Channel) -> None:
    """`contacts.commands` and command-api's queue on it."""
    channel.exchange_declare(exchange=COMMANDS_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(queue=COMMANDS_QUEUE, durable=True, arguments=quorum_queue_arguments())
    channel.queue_bind(queue=COMMANDS_QUEUE, exchange=COMMANDS_EXCHANGE, routing_key="")


def declare_topology(channel: _Channel) -> None:
    """Declare every exchange and durable queue of the system; safe to repeat from any process whose user may.

    Each service declares only its own part (its RabbitMQ user may configure nothing else,
    deploy/rabbitmq/definitions.json); this is for tools and tests that hold every right.
    """
    declare_dead_letters(channel)
    declare_events(channel)
    declare_commands(channel)


def broker_urls(amqp_url: str) -> list[str]:
    """The brokers AMQP_URL names: one URL, or several comma-separated (the nodes of a cluster, SPEC §10).

    A comma inside a password is written `%2C`.
    """
    return [url.strip() for url in amqp_url.split(",") if url.strip()]


def connection_parameters(amqp_url: str, name: str) -> list[pika.URLParameters]:
    """Parameters for one of our connections, one per broker, to try in turn: heartbeats on, never blocked
    forever by an alarm, one attempt each.

    The brokers come in a random order, so that the clients of a cluster spread over its nodes, and one
    that lost its node tries the others first as often as not. The heartbeat is 30 s unless a URL names
    one (`?heartbeat=5`).
    """
    urls = broker_urls(amqp_url)
    random.shuffle(urls)
    every = []
    for url in urls:
        parameters = pika.URLParameters(url)
        if "heartbeat" not in parse_qs(urlsplit(url).query):
            parameters.heartbeat = 30
        parameters.blocked_connection_timeout = 30
        parameters.connection_attempts = 1
        parameters.client_properties = {"connection_name": name}
        every.append(parameters)
    return every


def ensure_topology(url: str, declare: Callable[[_Channel], None] = declare_topology) -> None:
    """Declare the topology, or the part `declare` does, over a short-lived connection of its own."""
    connection = pika.BlockingConnection(connection_parameters(url, "topology"))
    try:
        declare(connection.channel())
    finally:
        connection.close()


class BrokerConnectionLost(Exception):
    """The connection or channel closed under us; whatever was in flight is unknown."""


#: The longest an asynchronous channel method waits for the broker's reply.
RPC_TIMEOUT_SECONDS = 10.0


def closing(channel: Channel) -> "asyncio.Future[str]":
    """A future that gets why `channel` closed, once it does."""
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_close(_channel: Channel, reason: Exception) -> None:
        if not lost.done():
            lost.set_result(str(reason))

    channel.add_on_close_callback(on_close)
    return lost


async def rpc(lost: "asyncio.Future[str]", call: Callable[..., Any], **arguments: Any) -> Any:
    """Call an asynchronous pika channel method and wait for its reply (a `pika.frame.Method`), or for the
    channel to close (`lost`, from `closing`)."""
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    call(callback=reply.set_result, **arguments)
    await asyncio.wait([reply, lost], timeout=RPC_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    if not reply.done():
        raise BrokerConnectionLost(lost.result() if lost.done() else "no reply from the broker")
    return reply.result()


async def open_async_channel(url: str, name: str) -> tuple[AsyncioConnection, Channel]:
    """Open a pika connection on the running asyncio loop to the first broker of `url` that answers, and one
    channel on it."""
    failures = []
    for parameters in connection_parameters(url, name):
        try:
            connection = await _open_async_connection(parameters)
        except BrokerConnectionLost as error:
            failures.append(f"{parameters.host}:{parameters.port}: {error}")
            continue
        channel_opened: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        connection.channel(on_open_callback=channel_opened.set_result)
        return connection, await asyncio.wait_for(channel_opened, timeout=10)
    raise BrokerConnectionLost("no broker answered: " + "; ".join(failures))


async def _open_async_connection(parameters: pika.URLParameters) -> AsyncioConnection:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()

    def on_open(connection: AsyncioConnection) -> None:
        if not opened.done():
            opened.set_result(connection)

    def on_error(_connection: AsyncioConnection, error: BaseException | str) -> None:
        if not opened.done():
            opened.set_exception(BrokerConnectionLost(str(error)))

    AsyncioConnection(
        parameters,
        on_open_callback=on_open,
        on_open_error_callback=on_error,
        on_close_callback=on_error,
        custom_ioloop=loop,
    )
    return await opened


def dead_letter(
    channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties, body: bytes, reason: str
) -> None:
    """Send a message we cannot process to `contacts.dead-letter`, its reason in a header.

    The channel must be in confirm mode: this returns once the broker has the copy, so the caller
    may then ack the original. Original properties are kept (a header value pika cannot write, as its
    text); the source queue's name is added.
    """
    headers = _writable(dict(properties.headers or {}))
    headers[DEATH_REASON_HEADER] = reason[:1000]
    headers["x-original-exchange"] = method.exchange
    headers["x-original-routing-key"] = method.routing_key
    copy = pika.BasicProperties(**{**vars(properties), "headers": headers, "user_id": None, "expiration": None})
    channel.basic_publish(DEAD_LETTER_EXCHANGE, method.routing_key, body, copy, mandatory=True)
