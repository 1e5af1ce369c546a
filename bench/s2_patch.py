"""S2: PATCH throughput and latency through command-api (events relayed) next to the same SQL done directly.

Baselines in the same run: the transaction command-api runs for a PATCH (its own statements: lock the
row, then update it and append the outbox row, whose trigger may notify the relay, in one statement),
issued with psycopg from 16 clients in as many processes as command-api has workers; and pgbench's
simple-update script at 16 clients, for reference. The two take turns, ROUNDS times, each waiting for
the relay to drain what the one before wrote; each figure is the median of its rounds.
"""

import functools
import os
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from command_api.store import LOCK, UPDATE, write_parameters
from psycopg.rows import dict_row

from bench.measure import ROUNDS, Load, alternating, in_processes, load_row, sampled_load, table, verdict, wrk
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.processes import wait_until
from tests.support.stack import Stack, start_command_api, start_relay

CLIENTS = 16
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
CONTACTS = 2_000
#: command-api's gunicorn workers here (its default), and so the direct baseline's processes.
WORKERS = 2

PATCH_LUA = """
local ids = {%(ids)s}
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
wrk.headers["Content-Type"] = "application/json"  -- next to the bearer token wrk's -H put there
request = function()
  local id = ids[math.random(#ids)]
  local body = string.format('{"phone": "+1 555 %%07d"}', math.random(0, 9999999))
  return wrk.format("PATCH", "/api/contacts/" .. id, nil, body)
end
"""


def seed(database_url: str, count: int) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
               SELECT 'Bench', 'Patch ' || n, 'patch.' || n || '.' || %s || '@example.com', '+1 555 0100 00', 1,
                      now(), now()
               FROM generate_series(1, %s) AS n RETURNING id""",
            (uuid.uuid4().hex[:8], count),
        ).fetchall()
    return [row[0] for row in rows]


def direct_sql(database_url: str, ids: list[int], clients: int, seconds: float) -> Load:
    """command-api's PATCH statements (store.LOCK, then store.UPDATE with its outbox row) from `clients`
    connections with psycopg, spread over WORKERS processes: no HTTP, Flask or pydantic."""
    share = clients // WORKERS
    return sampled_load(in_processes(_direct_clients, (database_url, ids, share, seconds), WORKERS), seconds)


def _direct_clients(database_url: str, ids: list[int], clients: int, seconds: float) -> list[float]:
    """One process of `direct_sql`: `clients` threads, each its own connection; every latency in ms."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def client(samples: list[float]) -> None:
        with psycopg.connect(database_url, row_factory=dict_row) as conn:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                with conn.transaction():
                    row = conn.execute(LOCK, (random.choice(ids),)).fetchone()
                    assert row is not None
                    now = row.pop("now")
                    phone = f"+1 555 {random.randint(0, 9999999):07d}"
                    contact = {**row, "phone": phone, "version": row["version"] + 1, "updated_at": now}
                    snapshot = {field: str(value) for field, value in contact.items()}
                    event = {"type": "contact.updated", "event_id": str(uuid.uuid4()), "contact": snapshot}
                    conn.execute(UPDATE, write_parameters(contact, event, None))
                samples.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=client, args=(samples,)) for samples in latencies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [sample for samples in latencies for sample in samples]


def pgbench_simple_update(database_url: str, clients: int, seconds: float) -> float:
    subprocess.run(["pgbench", "-i", "-q", "-s", "4", database_url], check=True, capture_output=True)
    output = subprocess.run(
        ["pgbench", "-N", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), database_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", output).group(1))  # type: ignore[union-attr]


def unpublished(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0])  # type: ignore[index]


def patch_load(base: str, token: str, ids: list[int], connections: int, seconds: float) -> Load:
    return wrk(f"{base}/", PATCH_LUA % {"ids": ",".join(map(str, ids))}, connections, seconds, token=token)


def run(infra: Infra) -> str:
    stack = Stack(infra)
    drains: list[float] = []

    def drained(measure: Callable[[], Load]) -> Callable[[], Load]:
        """`measure`, once the relay has published what the run before wrote (its time to do so kept)."""

        def measured() -> Load:
            started = time.monotonic()
            wait_until(lambda: unpublished(infra.database_url) == 0, timeout=120, message="the relay to drain")
            drains.append(time.monotonic() - started)
            return measure()

        return measured

    try:
        base = start_command_api(stack.launch, "bench-command-api", create_reply_delay_seconds=0, log_level="WARNING")
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        token = token_for(create_user(infra.database_url, "editor"))
        ids = seed(infra.database_url, CONTACTS)
        http_ids, sql_ids = ids[: CONTACTS // 2], ids[CONTACTS // 2 :]
        patch_load(base, token, http_ids, CLIENTS, 3)  # warm-up
        loads = alternating(
            {
                "api": drained(functools.partial(patch_load, base, token, http_ids, CLIENTS, SECONDS)),
                "direct": drained(functools.partial(direct_sql, infra.database_url, sql_ids, CLIENTS, SECONDS)),
            }
        )
        wait_until(lambda: unpublished(infra.database_url) == 0, timeout=120, message="the relay to drain")
        pgbench_tps = pgbench_simple_update(infra.database_url, CLIENTS, SECONDS)
    finally:
        stack.stop()
    api, direct = loads["api"], loads["direct"]
    ratio = api.rate / direct.rate
    rows = [
        load_row("command-api PATCH (HTTP, events relayed)", api),
        load_row(f"same transaction, psycopg direct ({WORKERS} processes)", direct),
        ("pgbench simple-update (reference)", f"{pgbench_tps:.0f}", "", ""),
    ]
    return "\n".join(
        [
            f"### S2: PATCH at {CLIENTS} concurrent clients, median of {ROUNDS} alternating runs of {SECONDS:.0f} s",
            "",
            table(["what", "per second", "p50 ms", "p99 ms"], rows),
            "",
            f"- command-api / direct SQL: **{ratio:.2f}×** (target ≥ 0.7×: {verdict(ratio >= 0.7, api, direct)})",
            f"- the relay drained each run's events within {max(drains):.1f} s (events relayed with confirms)",
        ]
    )
