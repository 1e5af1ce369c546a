"""`contacts.events` into the fan-out: an exclusive queue of this instance's own, consumed on the event loop.

On each (re)connection the queue is declared and bound first, then the stream's position is read from
PostgreSQL (`relay_state`: epoch and last seq handed out), and only then are messages consumed. Any event
numbered after that position is published after the binding, so it reaches the queue; the events up to
the position that this instance has not received are read from the outbox (`Fanout.start`).
"""

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from pika.channel import Channel
from pika.exceptions import AMQPError
from pika.spec import Basic, BasicProperties
from prometheus_client import Counter, Gauge

from notifier.fanout import Fanout
from shared.broker import EVENTS_EXCHANGE, BrokerConnectionLost, closing, open_async_channel, rpc
from shared.event_body import event_body
from shared.logs import correlation_id
from shared.settings import Settings

log = logging.getLogger(__name__)

PREFETCH = 1000
OUTBOX_CHUNK = 1000  # missed events read per query

_MISSED = "SELECT seq, payload FROM outbox WHERE seq > %s AND seq <= %s ORDER BY seq"

REJECTED = Counter("notifier_messages_rejected_total", "Messages on contacts.events that are not events (logged)")
SUBSCRIBED = Gauge("notifier_subscribed", "1 while consuming contacts.events")

_RETRIED = (AMQPError, BrokerConnectionLost, psycopg.Error, OSError, TimeoutError)


class NotAnEvent(ValueError):
    pass


def decode_event(headers: dict[str, Any] | None, body: bytes) -> tuple[str, int]:
    """The (epoch, seq) of an event as the relay publishes it: `epoch` header, JSON object body with `seq`."""
    epoch = (headers or {}).get("epoch")
    if isinstance(epoch, bytes):
        epoch = epoch.decode(errors="replace")
    if not isinstance(epoch, str) or not epoch:
        raise NotAnEvent("no epoch header")
    try:
        event = json.loads(body.decode())
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError alike
        raise NotAnEvent(f"body is not UTF-8 JSON: {error}") from None
    seq = event.get("seq") if isinstance(event, dict) else None
    if type(seq) is not int:
        raise NotAnEvent("body has no integer seq")
    return epoch, seq


class Outbox:
    """The stream as PostgreSQL keeps it, read on one connection: where it stands, and the events it holds."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], chunk: int = OUTBOX_CHUNK) -> None:
        self._conn = conn
        self._chunk = chunk

    async def position(self) -> tuple[str, int]:
        """The stream's epoch and the last seq the relay handed out (`relay_state`)."""
        row = await (await self._conn.execute("SELECT epoch::text, last_seq FROM relay_state")).fetchone()
        if row is None:
            raise psycopg.DataError("relay_state is empty: run the migrations")
        return str(row[0]), int(row[1])

    async def events(self, after: int, until: int) -> AsyncIterator[list[tuple[int, bytes]]]:
        """The events with seq in (`after`, `until`], in seq order, `chunk` per query, each body the bytes
        the relay publishes; it stops before the first chunk that lacks a seq.

        The relay numbers without gaps: it hands out `last_seq + 1 … last_seq + n` to a batch of n rows
        in the one statement that advances `last_seq` (relay.py, `_NUMBER_NEXT_BATCH`), and housekeeping
        deletes a row only once published and older than OUTBOX_RETENTION_HOURS. So every seq up to the
        stream's position is a committed row unless it was pruned: fewer rows than seqs is a gap. Rows
        numbered but not yet published are committed events too; their broker copy is a duplicate.
        """
        while after < until:
            end = min(after + self._chunk, until)
            rows = await (await self._conn.execute(_MISSED, (after, end))).fetchall()
            if len(rows) != end - after:
                return
            yield [(seq, event_body(seq, payload)) for seq, payload in rows]
            after = end


class EventConsumer:
    def __init__(self, settings: Settings, fanout: Fanout) -> None:
        self._settings = settings
        self._fanout = fanout
        self.subscribed = False
        self._was_subscribed = False
        self._last_tag = 0
        self._ack_due = False

    async def run(self) -> None:
        """Stay subscribed: reconnect after any loss with capped, jittered exponential backoff."""
        failures = 0
        while True:
            try:
                await self._subscribe()
            except _RETRIED as error:
                log.warning("not subscribed to %s: %s", EVENTS_EXCHANGE, error or type(error).__name__)
            failures = 1 if self._was_subscribed else failures + 1
            ceiling = min(self._settings.notifier_max_backoff_seconds, 0.25 * 2**failures)
            await asyncio.sleep(random.uniform(ceiling / 2, ceiling))

    async def _subscribe(self) -> None:
        """Subscribe and consume until the connection is lost (always ends by raising)."""
        self._was_subscribed = False
        connection, channel = await open_async_channel(self._settings.amqp_url, "notifier")
        lost = closing(channel)
        try:
            await rpc(lost, channel.exchange_declare, exchange=EVENTS_EXCHANGE, exchange_type="topic", durable=True)
            declared = await rpc(lost, channel.queue_declare, queue="", exclusive=True, auto_delete=True)
            queue = declared.method.queue
            await rpc(lost, channel.queue_bind, queue=queue, exchange=EVENTS_EXCHANGE, routing_key="contact.#")
            await rpc(lost, channel.basic_qos, prefetch_count=PREFETCH)
            async with await psycopg.AsyncConnection.connect(
                self._settings.database_url, autocommit=True, connect_timeout=5
            ) as conn:
                outbox = Outbox(conn)
                epoch, seq = await outbox.position()
                await self._fanout.start(epoch, seq, outbox.events)
            channel.basic_consume(queue, self._on_message)
            self.subscribed = self._was_subscribed = True
            SUBSCRIBED.set(1)
            log.info("subscribed to %s", EVENTS_EXCHANGE, extra={"queue": queue, "epoch": epoch, "seq": seq})
            raise BrokerConnectionLost(await lost)
        finally:
            self.subscribed = False
            SUBSCRIBED.set(0)
            if connection.is_open:
                connection.close()

    def _on_message(self, channel: Channel, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        self._last_tag = method.delivery_tag
        if not self._ack_due:  # one ack, after the burst of deliveries this read brought
            self._ack_due = True
            asyncio.get_running_loop().call_soon(self._ack, channel)
        headers = properties.headers or {}
        given = headers.get("correlation_id")
        token = correlation_id.set(given if isinstance(given, str) else None)
        try:
            epoch, seq = decode_event(headers, body)
            self._fanout.publish(epoch, seq, body)
            log.debug("event pushed", extra={"seq": seq, "type": method.routing_key})
        except NotAnEvent as error:
            REJECTED.inc()
            log.warning("dropped a non-event: %s", error, extra={"message_id": properties.message_id})
        finally:
            correlation_id.reset(token)

    def _ack(self, channel: Channel) -> None:
        self._ack_due = False
        if channel.is_open:
            channel.basic_ack(self._last_tag, multiple=True)
