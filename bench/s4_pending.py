"""S4: 10,000 creates pending at once with the real 20 s deferral.

Clients in several processes send the creates over a ramp; while every reply is held, the bench
samples command-api's memory and measures PATCH latency in the seconds between the end of the ramp and
the first reply, next to the same PATCH probe run while idle.
"""

import json
import os
import re
import resource
import selectors
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor

import psycopg
import requests

from bench.measure import median, percentile, process_tree, rss_bytes, table, verdict
from bench.s2_patch import patch_load, seed, unpublished
from shared.settings import Settings
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.processes import wait_until
from tests.support.stack import Stack, start_command_api, start_relay

CREATES = int(os.environ.get("BENCH_PENDING", "10000"))
RAMP_SECONDS = float(os.environ.get("BENCH_PENDING_RAMP_SECONDS", "15"))
CLIENT_PROCESSES = 4
PROBE_CONNECTIONS = 4
# The PATCH probe runs once every create has been sent and before the first reply is due: the time the
# issue asks about, with all the replies held and none of the burst's own writes still arriving.
PROBE_SECONDS = 3.0
DELAY = Settings().create_reply_delay_seconds


#: status (0: the connection failed), seconds to the reply, the new contact's id, whether it named Retry-After
Result = tuple[int, float, int | None, bool]


def _client_process(
    port: int, token: str, tag: str, first: int, count: int, rate: float, start_at: float
) -> list[Result]:
    """One client process: `count` creates at `rate` per second from `start_at` (a monotonic time), each
    over its own connection, with an editor's bearer `token`.

    A bare selector loop rather than asyncio streams: the load generator shares the two cores with the
    server it measures, so it should cost as little as it can.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: list[Result] = [(0, 0.0, None, False)] * count
    selector = selectors.DefaultSelector()
    sent = 0
    while sent < count or selector.get_map():
        while sent < count and start_at + sent / rate <= time.monotonic():
            new = socket.socket()
            new.setblocking(False)
            new.connect_ex(("127.0.0.1", port))
            selector.register(new, selectors.EVENT_WRITE, (sent, time.monotonic(), bytearray()))
            sent += 1
        timeout = max(0.0, start_at + sent / rate - time.monotonic()) if sent < count else None
        for key, _ in selector.select(timeout):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            index, started, reply = key.data
            try:
                if not reply and key.events == selectors.EVENT_WRITE:
                    conn.send(_create_request(token, first + index, tag))  # a few hundred bytes: one send
                    selector.modify(conn, selectors.EVENT_READ, key.data)
                    continue
                chunk = conn.recv(65536)
            except OSError:
                chunk, reply[:] = b"", b""
            if chunk:
                reply += chunk
                continue
            selector.unregister(conn)
            conn.close()
            results[index] = _parse_reply(bytes(reply), time.monotonic() - started)
    return results


def _create_request(token: str, n: int, tag: str) -> bytes:
    body = json.dumps(
        {
            "first_name": "Pending",
            "last_name": f"No {n}",
            "email": f"pending.{n}.{tag}@example.com",
            "phone": "+1 555 0100 00",
        }
    ).encode()
    return (
        b"POST /api/contacts HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
        % (token.encode(), len(body), body)
    )


def _parse_reply(reply: bytes, elapsed: float) -> Result:
    if not reply.startswith(b"HTTP/"):
        return 0, elapsed, None, False
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    contact_id = json.loads(body)["id"] if status == 201 else None
    return status, elapsed, contact_id, b"\r\nretry-after:" in head.lower()


def send_creates(
    pool: ProcessPoolExecutor, port: int, token: str, tag: str, creates: int, seconds: float, start_at: float
) -> "list[Future[list[Result]]]":
    """`creates` creates spread evenly over `seconds` from `start_at`, sent by CLIENT_PROCESSES processes of
    `pool`; each future holds one process's results."""
    share = creates // CLIENT_PROCESSES
    rate = creates / seconds / CLIENT_PROCESSES
    return [
        pool.submit(_client_process, port, token, tag, n * share, share, rate, start_at)
        for n in range(CLIENT_PROCESSES)
    ]


def stored_and_published(database_url: str, tag: str) -> tuple[int, int]:
    """Once the relay has drained: contacts stored by creates tagged `tag`, and the `contact.created`
    events published for them."""
    wait_until(lambda: unpublished(database_url) == 0, timeout=120, message="the relay to drain")
    pattern = f"%.{tag}@%"
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT count(*) FROM contacts WHERE email LIKE %s", (pattern,)).fetchone()
        events = conn.execute(
            "SELECT count(*) FROM outbox WHERE routing_key = 'contact.created'"
            " AND published_at IS NOT NULL AND payload->'contact'->>'email' LIKE %s",
            (pattern,),
        ).fetchone()
    assert stored is not None and events is not None
    return int(stored[0]), int(events[0])


def _pending(base: str) -> float | None:
    """Replies held right now, from command-api's own gauge (None when it is too busy to say in time)."""
    try:
        metrics = requests.get(f"{base}/metrics", timeout=2).text
    except requests.RequestException:
        return None
    found = re.search(r"^command_api_pending_creates (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else None


def run(infra: Infra) -> str:
    stack = Stack(infra)
    tag = uuid.uuid4().hex[:8]
    try:
        base = start_command_api(stack.launch, "bench-command-api-s4", log_level="WARNING")
        start_relay(stack.launch, "bench-relay-s4", log_level="WARNING")
        gunicorn = stack.processes[0].process
        assert gunicorn is not None
        port = int(base.rsplit(":", 1)[1])
        token = token_for(create_user(infra.database_url, "editor"))
        ids = seed(infra.database_url, 1_000)
        patch_load(base, token, ids, PROBE_CONNECTIONS, 3)  # warm-up: pools open, code paths hot
        idle_probe = patch_load(base, token, ids, PROBE_CONNECTIONS, PROBE_SECONDS)
        idle_rss = rss_bytes(process_tree(gunicorn.pid))

        start_at = time.monotonic() + 2
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                rss = rss_bytes(process_tree(gunicorn.pid))
                pending = _pending(base)
                if pending is not None:
                    samples.append((pending, rss))

        sampler = threading.Thread(target=sample)
        sampler.start()
        with ProcessPoolExecutor(CLIENT_PROCESSES) as pool:
            futures = send_creates(pool, port, token, tag, CREATES, RAMP_SECONDS, start_at)
            time.sleep(max(0.0, start_at + DELAY - PROBE_SECONDS - 0.5 - time.monotonic()))
            busy_probe = patch_load(base, token, ids, PROBE_CONNECTIONS, PROBE_SECONDS)
            results = [result for future in futures for result in future.result()]
        done.set()
        sampler.join()
        stored, events = stored_and_published(infra.database_url, tag)
    finally:
        stack.stop()

    latencies = [elapsed for _, elapsed, _, _ in results]
    created = [contact_id for status, _, contact_id, _ in results if status == 201]
    peak_pending = max(pending for pending, _ in samples)
    per_pending = (max(rss for _, rss in samples) - idle_rss) / max(peak_pending, 1)
    within = sum(1 for latency in latencies if DELAY <= latency <= DELAY + 1)
    p99_ratio = busy_probe.p99_ms / idle_probe.p99_ms
    rows = [
        ("creates sent / answered 201 / distinct ids", f"{len(results)} / {len(created)} / {len(set(created))}"),
        ("contacts stored / created events published", f"{stored} / {events}"),
        ("most replies held at once (command_api_pending_creates)", f"{peak_pending:.0f}"),
        (
            "reply time min / median / p99 / max (s)",
            " / ".join(
                f"{x:.2f}" for x in (min(latencies), median(latencies), percentile(latencies, 0.99), max(latencies))
            ),
        ),
        (f"answered between {DELAY:.0f} s and {DELAY + 1:.0f} s", f"{within} of {len(results)}"),
        (
            "command-api memory idle → peak",
            f"{idle_rss / 2**20:.0f} MiB → {max(r for _, r in samples) / 2**20:.0f} MiB",
        ),
        ("extra memory per pending create", f"{per_pending / 1024:.1f} KiB"),
        ("PATCH p50 / p99 idle (ms)", f"{idle_probe.p50_ms:.1f} / {idle_probe.p99_ms:.1f}"),
        ("PATCH p50 / p99 with the creates pending (ms)", f"{busy_probe.p50_ms:.1f} / {busy_probe.p99_ms:.1f}"),
    ]
    return "\n".join(
        [
            f"### S4: {CREATES} pending creates, {DELAY:.0f} s deferral, sent over {RAMP_SECONDS:.0f} s",
            "",
            table(["what", "measured"], rows),
            "",
            f"- all answered within {DELAY + 1:.0f} s: {verdict(within == len(results) == CREATES)}; none lost or"
            f" duplicated: {verdict(len(set(created)) == len(created) == stored == events)}",
            f"- extra memory ≤ 25 KiB per pending create: {verdict(per_pending <= 25 * 1024)}",
            f"- PATCH p99 with creates pending / idle: **{p99_ratio:.2f}×**"
            f" (target ≤ 1.2×: {verdict(p99_ratio <= 1.2)})",
        ]
    )
