"""S5: how far the history lags behind writes, and how fast the history worker drains a backlog.

Lag: PATCHes through command-api at half the rate it sustains (measured first, as in S2), each
event's version row timed from the event's `at` (the write's transaction time) to `recorded_at`.
Drain: S5_EVENTS events (100,000 by default) queued while no worker runs, then one worker started;
next to a bare pika loop that consumes and acks the same number of messages from a quorum queue.
"""

import json
import os
import time
import uuid
from datetime import UTC, datetime

import pika
import psycopg

from bench.measure import percentile, table, tail, verdict
from bench.write_load import max_patch_rate, paced_patches, seed
from shared.broker import EVENTS_EXCHANGE, HISTORY_QUEUE, quorum_queue_arguments
from shared.settings import Settings
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.processes import wait_until
from tests.support.read_side import start_history_worker
from tests.support.stack import Stack, start_command_api, start_relay

EVENTS = int(os.environ.get("S5_EVENTS", "100000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
BARE_QUEUE = "bench.bare-consumer"


def scalar(database_url: str, query: str, *params: object) -> float:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def queue_depth(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def fill(channel: pika.adapters.blocking_connection.BlockingChannel, exchange: str, key: str, first_id: int) -> None:
    """Queue EVENTS valid `contact.created` events for contacts first_id, first_id + 1, …"""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    for n in range(EVENTS):
        contact_id = first_id + n
        contact = {
            "id": contact_id, "first_name": "Bench", "last_name": f"Drain {n}", "email": f"drain.{n}@example.com",
            "phone": "+1 555 0100 00", "version": 1, "created_at": at, "updated_at": at,
        }  # fmt: skip
        body = {
            "type": "contact.created", "seq": n + 1, "event_id": str(uuid.uuid4()), "contact_id": contact_id,
            "version": 1, "contact": contact, "changed_fields": ["first_name"], "source": "bench", "at": at,
        }  # fmt: skip
        channel.basic_publish(exchange, key, json.dumps(body).encode(), properties)


def bare_drain(channel: pika.adapters.blocking_connection.BlockingChannel, prefetch: int) -> float:
    """Messages per second a bare consume + ack loop takes off a quorum queue of EVENTS messages."""
    channel.queue_declare(BARE_QUEUE, durable=True, arguments=quorum_queue_arguments())
    fill(channel, "", BARE_QUEUE, 1)
    wait_until(lambda: queue_depth(channel, BARE_QUEUE) >= EVENTS, timeout=600, message="the bare queue to fill")
    channel.basic_qos(prefetch_count=prefetch)
    started = time.monotonic()
    for consumed, (method, _properties, _body) in enumerate(channel.consume(BARE_QUEUE), start=1):
        channel.basic_ack(method.delivery_tag)
        if consumed == EVENTS:
            break
    elapsed = time.monotonic() - started
    channel.cancel()
    channel.queue_delete(BARE_QUEUE)
    return EVENTS / elapsed


def run(infra: Infra) -> str:
    settings = Settings()
    prefetch = 2 * settings.history_batch_size
    stack = Stack(infra)
    try:
        base = start_command_api(stack.launch, "bench-command-api", create_reply_delay_seconds=0, log_level="WARNING")
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        worker, _ = start_history_worker(stack.launch, "bench-history-worker", log_level="WARNING")
        token = token_for(create_user(infra.database_url, "editor"))
        ids = seed(infra.database_url, 2_000)
        write_max = max_patch_rate(base, token, ids, min(SECONDS, 5))

        def caught_up() -> bool:
            unpublished = scalar(infra.database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            published = scalar(infra.database_url, "SELECT count(*) FROM outbox")
            recorded = scalar(infra.database_url, "SELECT count(*) FROM contact_versions")
            return unpublished == 0 and recorded >= published

        wait_until(caught_up, timeout=300, message="the history to catch up")
        since = datetime.now(UTC)
        with paced_patches(base, token, ids, write_max / 2) as writes:
            time.sleep(SECONDS)
        written = writes[0]
        wait_until(caught_up, timeout=300, message="the history to catch up")
        with psycopg.connect(infra.database_url) as conn:
            lags = [
                float(row[0]) * 1000
                for row in conn.execute(
                    "SELECT extract(epoch FROM recorded_at - at) FROM contact_versions WHERE at >= %s", (since,)
                ).fetchall()
            ]

        worker.stop()
        connection = pika.BlockingConnection(pika.URLParameters(infra.amqp_url))
        channel = connection.channel()
        first_id = 10**12
        fill(channel, EVENTS_EXCHANGE, "contact.created", first_id)
        wait_until(lambda: queue_depth(channel, HISTORY_QUEUE) >= EVENTS, timeout=600, message="the backlog")
        backlog = "SELECT count(*) FROM contact_versions WHERE contact_id >= %s"
        start_history_worker(stack.launch, "bench-history-worker-drain", log_level="WARNING")
        ready_at, done_before = time.monotonic(), scalar(infra.database_url, backlog, first_id)
        wait_until(lambda: scalar(infra.database_url, backlog, first_id) >= EVENTS, timeout=900, interval=0.2)
        drain = (EVENTS - done_before) / (time.monotonic() - ready_at)
        bare = bare_drain(channel, prefetch)
        connection.close()
    finally:
        stack.stop()

    p50, (tail_name, p99) = percentile(lags, 0.5), tail(lags)
    ratio = drain / bare
    rows = [
        ("history worker: backlog drain (rows recorded)", f"{drain:.0f}/s"),
        ("bare pika consume + ack, same queue type and prefetch", f"{bare:.0f}/s"),
        ("history lag p50 at half the write rate", f"{p50:.1f} ms"),
        (f"history lag {tail_name} at half the write rate", f"{p99:.1f} ms"),
    ]
    return "\n".join(
        [
            f"### S5: history lag at {written.rate:.0f} PATCH/s ({write_max / 2:.0f}/s asked: half of"
            f" {write_max:.0f}/s); drain of {EVENTS:,} events",
            "",
            table(["what", "figure"], rows),
            "",
            f"- lag {tail_name} {p99:.1f} ms over {len(lags)} versions"
            f" (target ≤ 100 ms: {verdict(p99 <= 100, written)}); failed PATCHes: {written.failed};"
            " lag is from the write's transaction time to the history row's commit, through the outbox relay"
            " and RabbitMQ",
            f"- drain / bare consumer: **{ratio:.2f}x** (target ≥ 0.5x: {verdict(ratio >= 0.5)})",
        ]
    )
