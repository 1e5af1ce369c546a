"""The outbox relay: publishes committed events to `contacts.events`, numbering them `seq` in publish order.

One relay leads at a time (a PostgreSQL advisory lock); others wait for the lock. While events keep
coming the leader polls the outbox; once none came for `relay_idle_seconds` it sets
`relay_state.listening` and waits for the outbox trigger's NOTIFY, which writers send only then: a
notifying transaction commits under one database-wide lock, so NOTIFY under load would make writers
commit one at a time (migration 0008). It publishes a batch with confirms in flight together, and only
then marks the batch published. `seq` is stored before publishing, so a batch cut short by a lost
connection is sent again with the same numbers. The leader also keeps house for the database
(`keep_house`).
"""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
from pika.exceptions import AMQPError
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from psycopg.rows import dict_row
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from command_api.publisher import ConfirmingPublisher, PublishRefused
from shared.broker import EVENTS_EXCHANGE, BrokerConnectionLost, declare_events, ensure_topology
from shared.db import session_options
from shared.event_body import event_body
from shared.logs import configure_logging
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

LEADER_LOCK = 7_140_000_001  # pg_advisory_lock key of the relay leader
HOUSEKEEPING_EVERY_SECONDS = 600.0

PUBLISHED = Counter("relay_events_published_total", "Events published and confirmed by RabbitMQ")
LAG = Histogram(
    "relay_commit_to_confirm_seconds",
    "From the outbox row's commit to RabbitMQ's confirm",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LEADER = Gauge("relay_is_leader", "1 while this relay holds the leader lock")

Row = dict[str, Any]

_RETURNED = "outbox.id, outbox.routing_key, outbox.payload, outbox.correlation_id, outbox.seq, outbox.created_at"

# One statement, so atomic: take the oldest new rows, advance the stream's counter by as many, and store
# each row's `seq` (in id order) before anything is published. Nothing is written when nothing is new.
_NUMBER_NEXT_BATCH = f"""
    WITH batch AS (
        SELECT id, row_number() OVER (ORDER BY id) AS n
        FROM (SELECT id FROM outbox WHERE published_at IS NULL AND seq IS NULL ORDER BY id LIMIT %(limit)s) AS next
    ),
    counter AS (
        UPDATE relay_state SET last_seq = last_seq + (SELECT count(*) FROM batch)
        WHERE EXISTS (SELECT 1 FROM batch)
        RETURNING last_seq - (SELECT count(*) FROM batch) AS before
    )
    UPDATE outbox SET seq = counter.before + batch.n FROM batch, counter
    WHERE outbox.id = batch.id
    RETURNING {_RETURNED}"""

_NUMBERED_UNPUBLISHED = f"""
    SELECT {_RETURNED} FROM outbox
    WHERE published_at IS NULL AND seq IS NOT NULL ORDER BY seq LIMIT %(limit)s"""
_RETRIED = (psycopg.OperationalError, AMQPError, BrokerConnectionLost, PublishRefused, OSError, TimeoutError)


class OutboxRelay:
    def __init__(self, conn: psycopg.AsyncConnection[Row], publisher: ConfirmingPublisher, settings: Settings) -> None:
        self._conn = conn
        self._publisher = publisher
        self._settings = settings
        self._epoch = ""

    async def run(self, wake: asyncio.Event, listener: "asyncio.Task[None]", stop: asyncio.Event) -> None:
        """Relay batch after batch until `stop` is set; a batch under way is always finished first."""
        state = await (await self._conn.execute("SELECT epoch FROM relay_state")).fetchone()
        assert state is not None
        self._epoch = str(state["epoch"])
        await self._resend_numbered()
        listening = await self._set_listening(False)
        last_event = time.monotonic()
        while not stop.is_set():
            relayed = await self.relay_batch()
            if relayed:
                last_event = time.monotonic()
                if listening:
                    listening = await self._set_listening(False)
            if relayed == self._settings.relay_batch_size:
                continue
            if time.monotonic() - last_event < self._settings.relay_idle_seconds:
                # Events keep coming: poll again soon; the commits of this while join one batch.
                await _first_of([stop.wait()], listener, self._settings.relay_linger_seconds)
            elif not listening:
                wake.clear()
                listening = await self._set_listening(True)
                # The next batch looks once more, for writes that read `listening` before it was set.
                await _first_of([stop.wait()], listener, self._settings.relay_linger_seconds)
            else:
                await _first_of([wake.wait(), stop.wait()], listener, self._settings.relay_poll_seconds)
                wake.clear()
                # Let the commits that follow the one that woke us join its batch: many batches of one or
                # two events become fewer, larger ones, for a few ms of latency.
                await asyncio.sleep(self._settings.relay_linger_seconds)
            if listener.done():
                listener.result()  # the LISTEN connection failed: start over

    async def _set_listening(self, listening: bool) -> bool:
        """Tell writers whether to NOTIFY (migration 0008); returns `listening`."""
        await self._conn.execute("UPDATE relay_state SET listening = %s", (listening,))
        return listening

    async def relay_batch(self) -> int:
        """Number the next batch of new events and publish it; returns how many."""
        rows = await self._rows(_NUMBER_NEXT_BATCH, self._settings.relay_batch_size)
        await self._publish_batch(rows)
        return len(rows)

    async def _resend_numbered(self) -> None:
        """Publish what an earlier leader numbered but never saw confirmed, in `seq` order, before anything new."""
        while rows := await self._rows(_NUMBERED_UNPUBLISHED, self._settings.relay_batch_size):
            await self._publish_batch(rows)

    async def _rows(self, query: str, limit: int) -> list[Row]:
        rows = await (await self._conn.execute(query, {"limit": limit})).fetchall()
        return sorted(rows, key=lambda row: int(row["seq"]))

    async def _publish_batch(self, rows: list[Row]) -> None:
        """Publish the rows with confirms in flight together; mark those confirmed; raise the first failure."""
        if not rows:
            return
        outcomes = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        confirmed = [row for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
        if confirmed:
            await self._conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", ([row["id"] for row in confirmed],)
            )
            PUBLISHED.inc(len(confirmed))
            now = datetime.now(UTC)
            for row in confirmed:
                LAG.observe((now - row["created_at"]).total_seconds())
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _publish(self, row: Row) -> "asyncio.Future[None]":
        payload = row["payload"]
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=payload["event_id"],
            type=row["routing_key"],
            app_id="command-api",
            timestamp=int(time.time()),
            headers={"epoch": self._epoch, "correlation_id": row["correlation_id"]},
        )
        return self._publisher.publish(EVENTS_EXCHANGE, row["routing_key"], event_body(row["seq"], payload), properties)


async def keep_house(settings: Settings) -> None:
    """Every HOUSEKEEPING_EVERY_SECONDS, on a connection of its own so relaying never waits for it: forget
    what the write side keeps only for a while (published events, old idempotency keys, limits' ended
    windows), and cut the search blocks that grew too long (migration 0004)."""
    while True:
        try:
            async with await _connect(settings) as conn:
                await conn.execute(
                    "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => %s)",
                    (settings.outbox_retention_hours * 3600,),
                )
                await conn.execute(
                    "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)",
                    (settings.idempotency_key_retention_hours * 3600,),
                )
                await conn.execute("DELETE FROM rate_limits WHERE window_ends < now()")  # windows that ended
                await conn.execute("CALL split_search_blocks()")
        except psycopg.Error:
            log.warning("housekeeping failed; trying again later", exc_info=True)
        await asyncio.sleep(HOUSEKEEPING_EVERY_SECONDS)


async def _first_of(waits: list[Coroutine[Any, Any, Any]], task: "asyncio.Task[None]", seconds: float) -> None:
    """Return when any of `waits` or `task` finishes, or after `seconds`; the waits left are cancelled."""
    waiting = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait([*waiting, task], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in waiting:
            pending.cancel()


async def _connect(settings: Settings) -> psycopg.AsyncConnection[Row]:
    return await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, row_factory=dict_row, options=session_options(settings)
    )


async def _listen(conn: psycopg.AsyncConnection[Row], wake: asyncio.Event) -> None:
    await conn.execute("LISTEN outbox")
    async for _ in conn.notifies():
        wake.set()


async def lead(settings: Settings, stop: asyncio.Event) -> None:
    """Wait to become the leader, then relay until stopped or until something fails."""
    async with await _connect(settings) as conn, await _connect(settings) as listen_conn:
        while not (
            await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS led", (LEADER_LOCK,))).fetchone() or {}
        )["led"]:
            log.info("another relay leads; waiting for the leader lock")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.relay_poll_seconds)
            if stop.is_set():
                return
        log.info("leading the outbox relay")
        LEADER.set(1)
        await asyncio.to_thread(ensure_topology, settings.amqp_url, declare_events)
        publisher = await ConfirmingPublisher.connect(settings.amqp_url)
        wake = asyncio.Event()
        listener = asyncio.create_task(_listen(listen_conn, wake))
        housekeeping = asyncio.create_task(keep_house(settings))
        try:
            await OutboxRelay(conn, publisher, settings).run(wake, listener, stop)
        finally:
            LEADER.set(0)
            listener.cancel()
            housekeeping.cancel()
            publisher.close()


async def relay_until_stopped(settings: Settings) -> None:
    """Relay, retrying with capped backoff, until SIGTERM or SIGINT: then finish the batch under way and exit,
    so a relay that hands over to another never leaves events it published unmarked."""
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_RETRIED),
        wait=wait_random_exponential(multiplier=0.2, max=settings.relay_max_backoff_seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
    )
    await retrying(lead, settings, stop)
    log.info("relay stopped")


def main() -> None:
    settings = get_settings()
    configure_logging("relay", settings.log_level)
    start_http_server(settings.relay_metrics_port)
    asyncio.run(relay_until_stopped(settings))


if __name__ == "__main__":
    main()
