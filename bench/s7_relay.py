"""S7: the relay's most events per second, next to pika's own confirmed publishing at the same batch size.

Each round puts S7_EVENTS events (20,000 by default) in the outbox in one transaction, as committed writes
leave them, for the one relay running to number and publish; its rate is from that commit to the last
batch it marked published (PostgreSQL's clock both). Next to it, in alternating rounds, a bare pika
publisher (AsyncioConnection, confirm mode) sends the same bodies with the same properties to the same
exchange and routing key, mandatory, RELAY_BATCH_SIZE at a time, waiting for each batch's confirms
before the next: the relay's own pattern without its PostgreSQL work. The median of S7_ROUNDS (3) rounds of each.
The history queue, which takes every event, is purged after each round.

Beside them, for where the first ceiling is, the most PATCHes per second command-api sustains at S2's
concurrency (each one event), measured in the same run; and, where the machine can run one
(tests/support/servers.py), the same rounds on a private three-node RabbitMQ cluster.
"""

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime

import pika
import psycopg
from pika.frame import Method

from bench.measure import median, table, verdict
from bench.write_load import max_patch_rate, seed
from shared.broker import EVENTS_EXCHANGE, HISTORY_QUEUE, connection_parameters, ensure_topology, open_async_channel
from shared.event_body import event_body
from shared.settings import Settings
from tests.support import servers
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.processes import wait_until
from tests.support.stack import Stack, start_command_api, start_relay

EVENTS = int(os.environ.get("S7_EVENTS", "20000"))
ROUNDS = int(os.environ.get("S7_ROUNDS", "3"))
ROUTING_KEY = "contact.created"
EPOCH = str(uuid.uuid4())


def payloads(first_id: int) -> list[dict[str, object]]:
    """EVENTS `contact.created` payloads as the write path records them, for contacts first_id, first_id + 1, …"""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    made = []
    for n in range(EVENTS):
        contact_id = first_id + n
        email = f"relay.{contact_id}@example.com"
        contact = {
            "id": contact_id, "first_name": "Bench", "last_name": f"Relay {n}", "email": email,
            "phone": "+1 555 0100 00", "version": 1, "created_at": at, "updated_at": at,
        }  # fmt: skip
        made.append(
            {
                "type": ROUTING_KEY,
                "event_id": str(uuid.uuid4()),
                "contact_id": contact_id,
                "version": 1,
                "contact": contact,
                "changed_fields": sorted(contact),
                "source": "bench",
                "at": at,
                "actor": {"id": 1, "name": "Bench"},
            }
        )
    return made


def relay_rate(database_url: str, events: list[dict[str, object]]) -> float:
    """Events per second the running relay publishes, from the commit that gave it `events` to its last batch."""
    with psycopg.connect(database_url) as conn:
        with conn.cursor().copy("COPY outbox (event_id, routing_key, payload) FROM STDIN") as copy:
            for payload in events:
                copy.write_row((payload["event_id"], ROUTING_KEY, json.dumps(payload)))
        conn.commit()
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        committed: datetime = row[0]
        conn.commit()
        ids = [str(payload["event_id"]) for payload in events]

        def published() -> datetime | None:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE published_at IS NULL), max(published_at)"
                " FROM outbox WHERE event_id = ANY(%s::uuid[])",
                (ids,),
            ).fetchone()
            conn.commit()
            return row[1] if row and row[0] == 0 else None

        last: datetime = wait_until(published, timeout=600, interval=0.2, message="the relay to publish the round")
    return len(events) / (last - committed).total_seconds()


async def bare_rate(amqp_url: str, bodies: list[bytes], batch: int) -> float:
    """Messages per second pika publishes with confirms, `batch` in flight and confirmed before the next."""
    connection, channel = await open_async_channel(amqp_url, "bench.bare-publisher")
    loop = asyncio.get_running_loop()
    outstanding: set[int] = set()
    settled: asyncio.Future[None] = loop.create_future()

    def on_confirm(frame: Method) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        outstanding.difference_update({t for t in outstanding if t <= tag} if multiple else {tag})
        if not outstanding and not settled.done():
            settled.set_result(None)

    channel.confirm_delivery(ack_nack_callback=on_confirm)
    await asyncio.sleep(0.1)  # Confirm.SelectOk
    tag = 0
    started = time.monotonic()
    for first in range(0, len(bodies), batch):
        settled = loop.create_future()
        for body in bodies[first : first + batch]:
            tag += 1
            outstanding.add(tag)
            properties = pika.BasicProperties(  # the relay's own properties, made for each message as it does
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=str(uuid.uuid4()),
                type=ROUTING_KEY,
                app_id="command-api",
                timestamp=int(time.time()),
                headers={"epoch": EPOCH, "correlation_id": None},
            )
            channel.basic_publish(EVENTS_EXCHANGE, ROUTING_KEY, body, properties, mandatory=True)
        await settled
    elapsed = time.monotonic() - started
    connection.close()
    return len(bodies) / elapsed


def purge(amqp_url: str) -> None:
    connection = pika.BlockingConnection(connection_parameters(amqp_url, "bench.purge"))
    connection.channel().queue_purge(HISTORY_QUEUE)
    connection.close()


def rounds(infra: Infra, first_id: int) -> tuple[list[float], list[float]]:
    """ROUNDS of the relay (one, started here) and of bare pika, alternating, on `infra`'s broker."""
    batch = Settings().relay_batch_size
    stack = Stack(infra)
    relay_rates, bare_rates = [], []
    try:
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        for round_ in range(ROUNDS):
            events = payloads(first_id + round_ * EVENTS)
            relay_rates.append(relay_rate(infra.database_url, events))
            purge(infra.amqp_url)
            bodies = [event_body(n + 1, payload) for n, payload in enumerate(events)]
            bare_rates.append(asyncio.run(bare_rate(infra.amqp_url, bodies, batch)))
            purge(infra.amqp_url)
    finally:
        stack.stop()
    return relay_rates, bare_rates


def write_rate(infra: Infra) -> float:
    stack = Stack(infra)
    try:
        base = start_command_api(stack.launch, "bench-command-api", create_reply_delay_seconds=0, log_level="WARNING")
        token = token_for(create_user(infra.database_url, "editor"))
        return max_patch_rate(base, token, seed(infra.database_url, 2_000), 5)
    finally:
        stack.stop()


def run(infra: Infra) -> str:
    batch = Settings().relay_batch_size
    writes = write_rate(infra)
    relay_rates, bare_rates = rounds(infra, 10**12)
    relay, bare = median(relay_rates), median(bare_rates)
    rows = [
        ("relay: outbox → RabbitMQ, confirmed and marked published", f"{relay:,.0f}/s", _each(relay_rates)),
        (f"bare pika: confirmed publishes, {batch} in flight", f"{bare:,.0f}/s", _each(bare_rates)),
        ("command-api: PATCHes (one event each) at S2's concurrency, 5 s", f"{writes:,.0f}/s", ""),
    ]
    notes = [
        f"- relay / bare pika: **{relay / bare:.2f}x** (target ≥ 0.8x: {verdict(relay / bare >= 0.8)})",
        f"- the relay keeps up with {relay / writes:.1f}x the events command-api's writes make at most:"
        f" the first ceiling is {'the write path' if writes < relay else 'the relay'}",
    ]
    if (why := servers.available()) is None:
        with servers.private_servers(rabbit_nodes=3) as cluster:
            on_cluster = Infra(infra.database_url, cluster.amqp_url, "", "/", "guest", "guest")
            ensure_topology(on_cluster.amqp_url)
            cluster_relay, cluster_bare = rounds(on_cluster, 2 * 10**12)
        relay_c, bare_c = median(cluster_relay), median(cluster_bare)
        rows += [
            ("relay, on a three-node cluster (quorum queue on all three)", f"{relay_c:,.0f}/s", _each(cluster_relay)),
            ("bare pika, on the same cluster", f"{bare_c:,.0f}/s", _each(cluster_bare)),
        ]
        notes.append(
            f"- on the cluster: relay / bare pika **{relay_c / bare_c:.2f}x**; the cluster's confirmed publishing"
            f" is {bare_c / bare:.2f}x the single node's (three private nodes on the same two cores)"
        )
    else:
        notes.append(f"- no three-node cluster here: {why}")
    return "\n".join(
        [
            f"### S7: the relay's ceiling, {EVENTS:,} events a round, batch {batch}, {ROUNDS} alternating rounds",
            "",
            table(["what", "median", "each round"], rows),
            "",
            *notes,
        ]
    )


def _each(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)
