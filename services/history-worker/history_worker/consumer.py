"""Consume `history-worker.events` in batches: one transaction per batch, then one ack for all of it.

A batch is what arrived within `history_batch_wait_ms` of its first message, at most
`history_batch_size` messages, and is cut short as soon as nothing more is waiting, so a lone event
is recorded at once. Nothing is acked before its transaction commits; a message that cannot be
recorded is dead-lettered with its reason and acked with the rest. If PostgreSQL or RabbitMQ fails,
both connections are dropped: the transaction rolls back, RabbitMQ redelivers what was unacked, and
the primary key (contact id, version) makes recording it again harmless.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic
from prometheus_client import Counter, Gauge, Histogram

from history_worker.versions import PoisonMessage, Row, record_versions, version_row
from shared.broker import HISTORY_QUEUE, connection_parameters, dead_letter, declare_dead_letters, declare_events
from shared.db import session_options
from shared.logs import correlation_id
from shared.settings import Settings

log = logging.getLogger(__name__)

QUEUE_DEPTH_EVERY_SECONDS = 1.0

RECORDED = Counter("history_worker_events_total", "Events consumed", ["outcome"])
BATCH_SIZE = Histogram("history_worker_batch_size", "Messages per committed batch", buckets=(1, 5, 20, 100, 500, 2000))
LAG = Histogram(
    "history_worker_record_lag_seconds",
    "From an event's time to the commit of its version row",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUE_DEPTH = Gauge("history_worker_queue_depth", "Messages ready in history-worker.events")


@dataclass(frozen=True, eq=False)  # one delivery is itself, and hashable (pika's Basic.Deliver is not)
class Delivery:
    method: Basic.Deliver
    properties: pika.BasicProperties
    body: bytes


class Status:
    """What /readyz reports, and the newest event recorded, for the lag gauge."""

    def __init__(self) -> None:
        self.database = False
        self.broker = False
        self.newest_at: datetime | None = None

    def readiness(self) -> dict[str, bool]:
        return {"database": self.database, "broker": self.broker}

    def lag_seconds(self) -> float:
        return 0.0 if self.newest_at is None else (datetime.now(UTC) - self.newest_at).total_seconds()


class HistoryConsumer:
    def __init__(
        self, conn: psycopg.Connection[Any], connection: pika.BlockingConnection, settings: Settings, status: Status
    ) -> None:
        self._conn = conn
        self._connection = connection
        self._channel: BlockingChannel = connection.channel()
        self._settings = settings
        self._status = status
        self._pending: list[Delivery] = []
        self._depth_due = 0.0

    def run(self) -> None:
        declare_events(self._channel)
        declare_dead_letters(self._channel)
        self._channel.confirm_delivery()  # dead_letter returns once RabbitMQ holds the copy
        self._channel.basic_qos(prefetch_count=2 * self._settings.history_batch_size)
        self._channel.basic_consume(HISTORY_QUEUE, self._on_message)
        self._status.database = self._status.broker = True
        log.info("consuming %s", HISTORY_QUEUE)
        while True:
            self._collect()
            if self._pending:
                self._flush()
            self._refresh_queue_depth()

    def _on_message(
        self, _channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        self._pending.append(Delivery(method, properties, body))

    def _collect(self) -> None:
        self._connection.process_data_events(time_limit=QUEUE_DEPTH_EVERY_SECONDS)
        deadline = time.monotonic() + self._settings.history_batch_wait_ms / 1000
        while len(self._pending) < self._settings.history_batch_size and time.monotonic() < deadline:
            waiting = len(self._pending)
            self._connection.process_data_events(time_limit=0)
            if len(self._pending) == waiting:
                return

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        recordable: list[tuple[Delivery, Row]] = []
        poison: list[tuple[Delivery, str]] = []
        for delivery in batch:
            try:
                recordable.append((delivery, version_row(delivery.body)))
            except PoisonMessage as error:
                poison.append((delivery, str(error)))
        try:
            with self._conn.transaction():
                record_versions(self._conn, [row for _, row in recordable])
        except (psycopg.DataError, psycopg.IntegrityError):
            poison += self._record_one_by_one(recordable)
        for delivery, reason in poison:
            self._dead_letter(delivery, reason)
        self._channel.basic_ack(batch[-1].method.delivery_tag, multiple=True)
        self._observe(recordable, poison)
        BATCH_SIZE.observe(len(batch))

    def _record_one_by_one(self, recordable: list[tuple[Delivery, Row]]) -> list[tuple[Delivery, str]]:
        """After PostgreSQL refused a batch: record each row alone, and return those it refuses."""
        refused = []
        for delivery, row in recordable:
            try:
                with self._conn.transaction():
                    record_versions(self._conn, [row])
            except (psycopg.DataError, psycopg.IntegrityError) as error:
                refused.append((delivery, f"PostgreSQL refused the version: {error.diag.message_primary}"))
        recordable[:] = [item for item in recordable if item[0] not in {delivery for delivery, _ in refused}]
        return refused

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        headers = delivery.properties.headers or {}
        token = correlation_id.set(str(headers.get("correlation_id") or "") or None)
        try:
            dead_letter(self._channel, delivery.method, delivery.properties, delivery.body, reason)
            log.warning("dead-lettered an event: %s", reason, extra={"message_id": delivery.properties.message_id})
        finally:
            correlation_id.reset(token)

    def _observe(self, recorded: list[tuple[Delivery, Row]], poison: list[tuple[Delivery, str]]) -> None:
        now = datetime.now(UTC)
        for _, row in recorded:
            at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)
            LAG.observe(max(0.0, (now - at).total_seconds()))
            if self._status.newest_at is None or at > self._status.newest_at:
                self._status.newest_at = at
        RECORDED.labels("recorded").inc(len(recorded))
        RECORDED.labels("dead-lettered").inc(len(poison))

    def _refresh_queue_depth(self) -> None:
        if time.monotonic() < self._depth_due:
            return
        self._depth_due = time.monotonic() + QUEUE_DEPTH_EVERY_SECONDS
        declared = self._channel.queue_declare(HISTORY_QUEUE, passive=True)
        QUEUE_DEPTH.set(declared.method.message_count)


def consume(settings: Settings, status: Status) -> None:
    """Connect to PostgreSQL, then RabbitMQ, and consume until either fails.

    PostgreSQL comes first: while it is down no message is taken, so none is redelivered in vain
    (each redelivery counts towards the queue's delivery limit).
    """
    try:
        with psycopg.connect(settings.database_url, autocommit=True, options=session_options(settings)) as conn:
            connection = pika.BlockingConnection(connection_parameters(settings.amqp_url, "history-worker"))
            try:
                HistoryConsumer(conn, connection, settings, status).run()
            finally:
                if connection.is_open:
                    connection.close()
    finally:
        status.database = status.broker = False
