"""S1: the notifier's fan-out rate and memory per connection, next to a bare websockets `broadcast()` server.

Both servers are fed the same messages from `contacts.events` (published as the relay does) and
measured one at a time with the same client fleet. A client short of any frame fails the verdict:
the rate counts every client's frames. Per N: memory per connection = the server's RSS
growth when the N clients connect, divided by N; then BURSTS bursts of EVENTS events each, published
as fast as confirms allow. Rate = N * EVENTS / (first publish → the last client has the last event),
and, as the clients share the 2 cores with the server, also frames per CPU-second of the server
process. Medians over the bursts.
"""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

from bench.measure import median, rss_bytes, table, verdict
from bench.ws_clients import Fleet
from tests.support.infra import Infra
from tests.support.notifier import RelayLike, start_notifier, ws_url
from tests.support.processes import free_port, wait_until
from tests.support.stack import Stack

CLIENT_COUNTS = [int(n) for n in os.environ.get("BENCH_CLIENTS", "1000,10000").split(",")]
EVENTS = int(os.environ.get("BENCH_FANOUT_EVENTS", "100"))
BURSTS = int(os.environ.get("BENCH_FANOUT_BURSTS", "3"))
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int
    hello: bool  # sends a hello frame before the events
    metrics: str | None = None  # its /metrics, for a notifier


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def bare_server(infra: Infra) -> Iterator[Server]:
    stack = Stack(infra)
    port = free_port()
    try:
        process = stack.launch(
            "bench-bare-broadcast", ["python", "-m", "bench.bare_broadcast", str(port), infra.amqp_url], None, port=port
        )
        wait_until(lambda: _listening(port), timeout=30, message="the bare server")
        assert process.process is not None
        yield Server("bare broadcast()", f"ws://127.0.0.1:{port}/", process.process.pid, hello=False)
    finally:
        stack.stop()


@contextmanager
def notifier_server(infra: Infra) -> Iterator[Server]:
    stack = Stack(infra)
    try:
        base, process = start_notifier(stack.launch, "bench-notifier", log_level="WARNING")
        assert process.process is not None
        yield Server("notifier", ws_url(base), process.process.pid, hello=True, metrics=f"{base}/metrics")
    finally:
        stack.stop()


@dataclass(frozen=True)
class Fanout:
    rate: float  # frames delivered per second, wall clock
    cpu_rate: float  # frames per CPU-second of the server
    bytes_per_connection: float
    incomplete: int


def measure_fanout(server: Server, publisher: RelayLike, clients: int) -> Fanout:
    before = rss_bytes([server.pid])
    fleet = Fleet(server.url, clients, skip_first=server.hello)
    try:
        connected = rss_bytes([server.pid])
        publisher.publish(5)
        fleet.collect(5)  # warm-up
        rates, cpu_rates, incomplete = [], [], 0
        for _ in range(BURSTS):
            cpu, started = cpu_seconds(server.pid), monotonic()
            publisher.publish(EVENTS)
            last, missing = fleet.collect(EVENTS)
            rates.append(clients * EVENTS / (max(last) - started))
            cpu_rates.append(clients * EVENTS / max(cpu_seconds(server.pid) - cpu, 1 / _TICKS))
            incomplete += missing
    finally:
        fleet.close()
    return Fanout(median(rates), median(cpu_rates), (connected - before) / clients, incomplete)


def run(infra: Infra) -> str:
    publisher = RelayLike(infra.database_url, infra.amqp_url)
    results: dict[tuple[str, int], Fanout] = {}
    try:
        for make in (bare_server, notifier_server):
            with make(infra) as server:
                for clients in CLIENT_COUNTS:
                    results[server.name, clients] = measure_fanout(server, publisher, clients)
    finally:
        publisher.close()
    rows, lines = [], []
    for clients in CLIENT_COUNTS:
        bare, ours = results["bare broadcast()", clients], results["notifier", clients]
        for name, result in (("bare broadcast()", bare), ("notifier", ours)):
            rows.append(
                (
                    f"{name}, {clients:,} clients",
                    f"{result.rate:,.0f}",
                    f"{result.cpu_rate:,.0f}",
                    f"{result.bytes_per_connection / 1024:.1f}",
                    result.incomplete,
                )
            )
        ratio, cpu_ratio = ours.rate / bare.rate, ours.cpu_rate / bare.cpu_rate
        extra = (ours.bytes_per_connection - bare.bytes_per_connection) / 1024
        lines.append(
            f"- {clients:,} clients: rate **{ratio:.2f}x** bare (per CPU-second {cpu_ratio:.2f}x; target ≥ 0.85x:"
            f" {verdict(min(ratio, cpu_ratio) >= 0.85, short=ours.incomplete + bare.incomplete)});"
            f" memory per connection bare {extra:+.1f} KiB"
            f" (target ≤ +4 KiB: {verdict(extra <= 4)})"
        )
    return "\n".join(
        [
            f"### S1: fan-out of {EVENTS}-event bursts (median of {BURSTS}), notifier vs bare `broadcast()`",
            "",
            table(["server", "frames/s (wall)", "frames per CPU-s", "KiB per connection", "clients short"], rows),
            "",
            *lines,
        ]
    )
