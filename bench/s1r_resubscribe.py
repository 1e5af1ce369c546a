"""S1r: many WebSocket clients through a cut of the notifier's broker connection while writes go on.

The notifier reaches RabbitMQ through a TCP proxy that is cut for CUT_SECONDS and restored; events are
written all along (outbox rows inserted as the write path inserts them, at WRITES_PER_SECOND, numbered
and published by the real relay). Afterwards every client must hold every seq written since it
connected, once, in order, with no resync (target 0). Reported: the time from the restore until the
notifier is subscribed again (its backoff, the AMQP handshake, the gap read from the outbox and sent),
and until the last client has the last event numbered before the restore.
"""

import json
import os
import threading
import uuid
from time import monotonic, sleep

import psycopg
import requests

from bench.measure import table, verdict
from bench.ws_clients import Fleet
from tests.support.infra import Infra
from tests.support.notifier import start_notifier, ws_url
from tests.support.processes import wait_until
from tests.support.stack import Stack, start_relay
from tests.support.tcp_proxy import proxied

CLIENTS = int(os.environ.get("BENCH_RESUBSCRIBE_CLIENTS", "10000"))
CUT_SECONDS = float(os.environ.get("BENCH_CUT_SECONDS", "5"))
# Frames for all clients at about half the notifier's fan-out rate (S1: ~40,000 frames/s on this machine).
WRITES_PER_SECOND = float(os.environ.get("BENCH_RESUBSCRIBE_WRITES", str(20_000 / CLIENTS)))
WRITING_SECONDS = 2.0  # of writes before the cut, and after the notifier resubscribed


class Writer(threading.Thread):
    """Inserts one outbox row every 1 / WRITES_PER_SECOND s until stopped, as a committed write does."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self._database_url = database_url
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            while not self.stopping.wait(1 / WRITES_PER_SECOND):
                event_id = str(uuid.uuid4())
                payload = {"type": "contact.deleted", "event_id": event_id, "contact_id": 10**15, "version": 2}
                conn.execute(
                    "INSERT INTO outbox (event_id, routing_key, payload) VALUES (%s, 'contact.deleted', %s)",
                    (event_id, json.dumps(payload)),
                )


def last_seq(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT last_seq FROM relay_state").fetchone()
    assert row is not None
    return int(row[0])


def run(infra: Infra) -> str:
    stack = Stack(infra)
    proxy, amqp_url = proxied(infra.amqp_url, 5672)
    writer = Writer(infra.database_url)
    try:
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        base, _ = start_notifier(
            stack.launch,
            "bench-notifier-proxied",
            amqp_url=amqp_url,
            notifier_max_backoff_seconds=1,
            log_level="WARNING",
        )
        start = last_seq(infra.database_url)
        fleet = Fleet(ws_url(base), CLIENTS, skip_first=True, record=True)
        try:
            writer.start()
            sleep(WRITING_SECONDS)
            proxy.cut()
            wait_until(lambda: requests.get(f"{base}/readyz", timeout=30).status_code == 503, message="the loss")
            sleep(CUT_SECONDS)
            before_restore = last_seq(infra.database_url)
            proxy.restore()
            restored = monotonic()
            wait_until(lambda: requests.get(f"{base}/readyz", timeout=30).ok, timeout=60, message="resubscribing")
            resubscribed = monotonic() - restored
            sleep(WRITING_SECONDS)
            writer.stopping.set()
            writer.join()
            with psycopg.connect(infra.database_url, autocommit=True) as conn:
                wait_until(
                    lambda: conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone() == (0,),
                    message="the relay to publish everything",
                )
                expected = [
                    row[0] for row in conn.execute("SELECT seq FROM outbox WHERE seq > %s ORDER BY seq", (start,))
                ]
            arrivals, short = fleet.collect(len(expected))
            resyncs, wrong = fleet.audit(expected)
        finally:
            fleet.close()
        metrics = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        writer.stopping.set()
        proxy.close()
        stack.stop()
    catch_up = arrivals[expected.index(before_restore)] - restored
    filled = next(line.split()[1] for line in metrics.splitlines() if line.startswith("notifier_events_filled_total"))
    rows = [
        (
            f"{CLIENTS:,}",
            f"{CUT_SECONDS:.0f} s",
            len(expected),
            f"{float(filled):.0f}",
            resyncs,
            wrong + short,
            f"{resubscribed:.2f} s",
            f"{catch_up:.2f} s",
        )
    ]
    return "\n".join(
        [
            f"### S1r: {CLIENTS:,} clients through a {CUT_SECONDS:.0f}-s cut of the notifier's broker connection",
            "",
            table(
                [
                    "clients",
                    "cut",
                    "events written",
                    "filled from the outbox",
                    "resyncs",
                    "clients missing or doubling a seq",
                    "restore → resubscribed",
                    "restore → every client caught up",
                ],
                rows,
            ),
            "",
            f"- resyncs 0 and every client complete: {verdict(resyncs == 0 and wrong + short == 0)}",
        ]
    )
