"""S3: write -> last client latency through the whole system, next to its floor, with and without stalled clients.

Per N clients, SAMPLES writes one at a time, spaced three times the warm-up write's latency apart (at
least `interval`), so that samples never overlap:
- notifier: PATCH via command-api (committed, outbox -> relay -> RabbitMQ -> notifier), from sending
  the request to the moment the last client has the event;
- floor: a commit of the same transaction with psycopg, plus publish -> consume -> bare `broadcast()`
  at the same N (basic_publish to the last client), the two sample lists added pairwise in random order;
- stalled: the notifier again with 1% of the clients connected but never reading (over sockets with a
  small receive buffer); first PUSHBACK_EVENTS events of PUSHBACK_PADDING bytes each, twice the
  notifier's per-client buffer limit, so that they must be found too slow and closed (counted on the
  notifier's /metrics); then the others' latency.
The tail is a p99 only over MIN_P99_SAMPLES samples (BENCH_LATENCY_SAMPLES), else the maximum, so
named; a client short of a frame fails the verdict.
"""

import functools
import os
import random
import re
import time
import uuid
from collections.abc import Callable

import psycopg
import requests
from psycopg.types.json import Json

from bench.measure import median, table, tail, tail_text, verdict
from bench.s1_fanout import CLIENT_COUNTS, Server, bare_server, notifier_server
from bench.ws_clients import Fleet
from shared.settings import Settings
from tests.support.identity import create_user, signed_in, token_for
from tests.support.infra import Infra
from tests.support.notifier import RelayLike, event_body
from tests.support.stack import Stack, start_command_api, start_relay

SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "100"))
STALLED_SHARE = 0.01
PUSHBACK_PADDING = 16 * 1024
PUSHBACK_EVENTS = 2 * Settings().notifier_client_buffer_bytes // PUSHBACK_PADDING
_SLOW_DROPPED = re.compile(r'^notifier_clients_dropped_total\{reason="slow"\} (\S+)$', re.MULTILINE)


def interval(clients: int) -> float:
    return max(0.2, clients * 50e-6)


def seed_contact(database_url: str) -> int:
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
               VALUES ('Bench', 'Latency', %s, '+1 555 0100 00', 1, now(), now()) RETURNING id""",
            (f"latency.{tag}@example.com",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def commit_samples(database_url: str, contact_id: int) -> list[float]:
    """The PATCH transaction's commit, in ms; its outbox rows are marked published so the relay skips them."""
    samples = []
    with psycopg.connect(database_url) as conn:
        for _ in range(SAMPLES):
            started = time.monotonic()
            with conn.transaction():
                conn.execute(
                    "UPDATE contacts SET phone = %s, version = version + 1, updated_at = now() WHERE id = %s",
                    (f"+1 555 {random.randrange(10**7):07d}", contact_id),
                )
                event_id = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO outbox (event_id, routing_key, payload, published_at) VALUES (%s, %s, %s, now())",
                    (event_id, "contact.updated", Json({"event_id": event_id})),
                )
            samples.append((time.monotonic() - started) * 1000)
    return samples


def latencies(
    server: Server, clients: int, write: Callable[[], None], stalled: int = 0, fill: Callable[[], int] | None = None
) -> tuple[list[float], int]:
    """Write -> last reading client, in ms, for SAMPLES writes; and how many clients missed some. `fill`,
    run first, sends events (returning how many) that every reading client is to get before the writes."""
    fleet = Fleet(server.url, clients, stalled=stalled, skip_first=server.hello)
    try:
        if fill is not None:
            fleet.collect(fill())
        warm = time.monotonic()
        write()
        spacing = max(interval(clients), 3 * (fleet.collect(1)[0][0] - warm))  # warm-up
        started = []
        for _ in range(SAMPLES):
            started.append(time.monotonic())
            write()
            time.sleep(max(0.0, started[-1] + spacing - time.monotonic()))
        last, incomplete = fleet.collect(SAMPLES)
    finally:
        fleet.close()
    return [(end - start) * 1000 for start, end in zip(started, last, strict=True)], incomplete


def push_back(publisher: RelayLike) -> int:
    """Publish PUSHBACK_EVENTS padded events; returns how many."""
    return len(publisher.publish(PUSHBACK_EVENTS, PUSHBACK_PADDING))


def slow_dropped(notifier: Server) -> float:
    """Clients the notifier closed as too slow, from its /metrics."""
    assert notifier.metrics is not None
    found = _SLOW_DROPPED.search(requests.get(notifier.metrics, timeout=10).text)
    return float(found.group(1)) if found else 0.0


def run(infra: Infra) -> str:
    contact_id = seed_contact(infra.database_url)
    commits = commit_samples(infra.database_url, contact_id)
    stack = Stack(infra)
    http = signed_in(requests.Session(), token_for(create_user(infra.database_url, "editor")))

    def patch() -> None:
        phone = f"+1 555 {random.randrange(10**7):07d}"
        reply = http.patch(f"{base}/api/contacts/{contact_id}", json={"phone": phone}, timeout=30)
        assert reply.status_code == 200, reply.text

    bodies = iter(range(1, 10**9))

    def floor_fanout(clients: int) -> list[float]:
        """Publish straight to RabbitMQ (numbering is the relay's part, not the floor's) → bare broadcast()."""
        publisher = RelayLike(infra.database_url, infra.amqp_url)  # one per run: an idle one misses heartbeats
        try:
            with bare_server(infra) as bare:
                samples, _ = latencies(
                    bare, clients, lambda: publisher.publish_raw(event_body(next(bodies)), {"epoch": "floor"})
                )
            return samples
        finally:
            publisher.close()

    rows, lines = [], []
    try:
        # One editor writes every sample: its writes are not to be limited (WRITES_PER_USER) but measured.
        base = start_command_api(
            stack.launch, "bench-command-api", create_reply_delay_seconds=0, log_level="WARNING", writes_per_user=10**9
        )
        start_relay(stack.launch, "bench-relay", log_level="WARNING", relay_poll_seconds=0.2)
        for clients in CLIENT_COUNTS:
            bare_ms = floor_fanout(clients)
            with notifier_server(infra) as notifier:
                ours, short = latencies(notifier, clients, patch)
            stalled = max(1, int(clients * STALLED_SHARE))
            pusher = RelayLike(infra.database_url, infra.amqp_url)
            try:
                with notifier_server(infra) as notifier:
                    fill = functools.partial(push_back, pusher)
                    with_stalled, short_stalled = latencies(notifier, clients, patch, stalled, fill)
                    dropped = slow_dropped(notifier)
            finally:
                pusher.close()
            floor = [
                commit + fanout for commit, fanout in zip(random.sample(commits, len(commits)), bare_ms, strict=True)
            ]
            for name, samples, missing in (
                ("floor: commit + publish->consume + bare broadcast()", floor, 0),
                ("notifier: HTTP PATCH -> last client", ours, short),
                (f"notifier, {stalled} clients stalled: -> last healthy client", with_stalled, short_stalled),
            ):
                rows.append((f"{clients:,} clients, {name}", f"{median(samples):.1f}", tail_text(samples), missing))
            tail_name, ours_tail = tail(ours)
            p99_ratio = ours_tail / tail(floor)[1]
            stalled_ratio = tail(with_stalled)[1] / ours_tail
            lines.append(
                f"- {clients:,} clients: {tail_name} **{p99_ratio:.2f}x** the floor"
                f" (target <= 1.25x: {verdict(p99_ratio <= 1.25, short=short)});"
                f" with 1% stalled, healthy {tail_name} **{stalled_ratio:.2f}x** without"
                f" (target <= 1.2x: {verdict(stalled_ratio <= 1.2 and dropped >= stalled, short=short_stalled)});"
                f" pushed back: {dropped:.0f} of the {stalled} stalled clients closed as too slow"
            )
    finally:
        stack.stop()
        http.close()
    return "\n".join(
        [
            f"### S3: write -> last client latency, {SAMPLES} writes per row, ms",
            "",
            table(["what", "p50 ms", "tail ms", "clients short"], rows),
            "",
            f"- commit alone: p50 {median(commits):.1f} ms, {tail_text(commits)} ms",
            *lines,
        ]
    )
