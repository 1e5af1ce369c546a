"""S6: search and list through query-api over a large data set, next to the same SQL issued directly.

The data set is bench/dataset.py's (S6_CONTACTS contacts, 1,000,000 by default). The direct baseline
runs query-api's own views (the same statements, the same two-step search) from threads with psycopg,
without HTTP, in as many processes as query-api has workers. Throughput is measured at 8 concurrent
clients, enough to saturate the two cores; latency at 2 clients, one per core, so that p99 shows what a
request costs rather than how long it queues behind seven others. The latency again while S2's PATCH
load runs at half its maximum rate (first, so that the runs without writes can take turns), and beside
plain CPU burners of the same appetite as that write load: what any work of that size does to reads on
this machine.

Without writes, the HTTP runs, the direct ones and those beside the burners take turns, ROUNDS times,
and each figure is the median over its rounds: the machine is shared and drifts within minutes. Under
writes, search and list take turns the same way, so that every p99 compared comes from runs of the
same length (a p99 over a longer run catches more of the machine's hiccups).
Last, the HTTP floor: query-api's /healthz, the least a request through gunicorn and Flask costs. A
page that runs at D/s directly would run at about floor/(floor + D) of that through them, were HTTP and
SQL all it cost: a rough estimate, from figures of different minutes.
"""

import os
import threading
import time
from functools import partial
from urllib.parse import parse_qsl, quote, urlsplit

import requests
from query_api.params import parse_list_query
from query_api.views import ContactViews

from bench.dataset import generate_contacts
from bench.measure import (
    Load,
    alternating,
    busy_cores,
    cpu_burners,
    in_processes,
    load_row,
    sampled_load,
    table,
    verdict,
    wrk,
)
from bench.write_load import max_patch_rate, paced_patches, seed
from shared.db import open_pool
from shared.settings import Settings
from tests.support.identity import create_user, signed_in, token_for
from tests.support.infra import Infra
from tests.support.read_side import start_query_api
from tests.support.stack import Stack, start_command_api, start_relay

CONTACTS = int(os.environ.get("S6_CONTACTS", "1000000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
CONNECTIONS = 8  # for throughput: both cores saturated
LATENCY_CONNECTIONS = 2  # for latency: one request per core
ROUNDS = 3  # the runs without writes take turns, SECONDS / ROUNDS each, and report their medians
WORKERS = 2  # query-api's worker processes here, and so the direct baseline's
RATIO_TARGETS = {"search": 0.7, "list": 0.6}  # query-api / direct; a list page is near the HTTP floor's 0.65x

SEARCHES = [
    "müller", "smith", "lovelace", "ada", "hopper", "ngata", "zoë", "o'connor", "wiśniewski", "jürgen",
    "grace.h", "example.io", "7946", "+44", "555 12", "turing.4", "sato", "nguyễn", "ivanov", "patel",
]  # fmt: skip
SORTS = ["last_name", "-last_name", "first_name", "-first_name", "email", "-email", "updated_at", "-updated_at"]

LUA = """
local paths = {%(paths)s}
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def search_paths() -> list[str]:
    return [f"/api/contacts?search={quote(term)}&sort={sort}" for term in SEARCHES for sort in SORTS[:2]]


def list_paths(base: str, token: str) -> list[str]:
    """First pages of every sort, and the next page of each (its cursor taken from a real reply)."""

    paths = []
    with signed_in(requests.Session(), token) as http:
        for sort in SORTS:
            paths.append(f"/api/contacts?sort={sort}")
            cursor = http.get(f"{base}/api/contacts", params={"sort": sort, "limit": "200"}, timeout=30).json()
            paths.append(f"/api/contacts?sort={sort}&cursor={cursor['next_cursor']}")
    return paths


def through_http(base: str, token: str, paths: list[str], connections: int, seconds: float = SECONDS) -> Load:
    lua = LUA % {"paths": ",".join(f'"{path}"' for path in paths)}
    return wrk(f"{base}/", lua, connections, seconds, token=token)


def direct(database_url: str, paths: list[str], clients: int, seconds: float) -> Load:
    """The same requests as calls of query-api's views from `clients` threads, no HTTP, spread over as many
    processes as query-api has workers (WORKERS), so that the GIL holds back neither side."""
    share = max(1, clients // WORKERS)
    return sampled_load(in_processes(_direct_clients, (database_url, paths, share, seconds), WORKERS), seconds)


def _direct_clients(database_url: str, paths: list[str], clients: int, seconds: float) -> list[float]:
    """One process of `direct`: its own pool, as a query-api worker has, and `clients` threads; latencies in ms."""
    settings = Settings(database_url=database_url, db_pool_min_size=clients, db_pool_max_size=clients)
    pool = open_pool(settings, read_only_role=settings.query_database_role)
    views = ContactViews(pool)
    queries = [parse_list_query(dict(parse_qsl(urlsplit(path).query))) for path in paths]
    samples: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def client(mine: list[float], offset: int) -> None:
        index = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            views.contacts(queries[index % len(queries)])
            mine.append((time.perf_counter() - started) * 1000)
            index += 7

    threads = [threading.Thread(target=client, args=(mine, n)) for n, mine in enumerate(samples)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    return [sample for mine in samples for sample in mine]


def _idle_figures(base: str, token: str, database_url: str, paths: list[str], write_cores: float) -> dict[str, Load]:
    """With no writes: throughput and latency through HTTP and direct, and the latency beside CPU burners."""
    seconds = SECONDS / ROUNDS

    def burned() -> Load:
        with cpu_burners(write_cores):
            return through_http(base, token, paths, LATENCY_CONNECTIONS, seconds)

    return alternating(
        {
            "http": lambda: through_http(base, token, paths, CONNECTIONS, seconds),
            "sql": lambda: direct(database_url, paths, CONNECTIONS, seconds),
            "http_2": lambda: through_http(base, token, paths, LATENCY_CONNECTIONS, seconds),
            "sql_2": lambda: direct(database_url, paths, LATENCY_CONNECTIONS, seconds),
            "burned": burned,
        },
        ROUNDS,
    )


def run(infra: Infra) -> str:
    started = time.monotonic()
    generate_contacts(infra.database_url, CONTACTS)
    generated = time.monotonic() - started
    stack = Stack(infra)
    try:
        base = start_query_api(stack.launch, "bench-query-api", query_api_workers=WORKERS, log_level="WARNING")
        token = token_for(create_user(infra.database_url, "editor"))  # reads and writes alike
        workloads = {"search": search_paths(), "list": list_paths(base, token)}
        for paths in workloads.values():
            through_http(base, token, paths, CONNECTIONS)  # warm the caches

        writer = start_command_api(stack.launch, "bench-command-api", create_reply_delay_seconds=0, log_level="WARNING")
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        ids = seed(infra.database_url, 2_000)
        write_max = max_patch_rate(writer, token, ids, min(SECONDS, 5))
        with paced_patches(writer, token, ids, write_max / 2) as writes:
            write_cores = busy_cores(min(SECONDS, 5))
            loaded = alternating(
                {
                    name: partial(through_http, base, token, paths, LATENCY_CONNECTIONS, SECONDS / ROUNDS)
                    for name, paths in workloads.items()
                },
                ROUNDS,
            )

        figures = {
            name: _idle_figures(base, token, infra.database_url, paths, write_cores)
            for name, paths in workloads.items()
        }
        floor = through_http(base, token, ["/healthz"], CONNECTIONS)
    finally:
        stack.stop()

    written = writes[0]
    rows = []
    lines = []
    for name, idle in figures.items():
        ratio = idle["http"].rate / idle["sql"].rate
        p99 = idle["http_2"].p99_ms
        slowdown = loaded[name].p99_ms / p99
        bound = floor.rate / (floor.rate + idle["sql"].rate)
        rows += [
            load_row(f"{name}: query-api (HTTP), {CONNECTIONS} clients", idle["http"]),
            load_row(f"{name}: same SQL, psycopg direct, {CONNECTIONS} clients", idle["sql"]),
            load_row(f"{name}: query-api (HTTP), {LATENCY_CONNECTIONS} clients", idle["http_2"]),
            load_row(f"{name}: same SQL, psycopg direct, {LATENCY_CONNECTIONS} clients", idle["sql_2"]),
            load_row(f"{name}: query-api (HTTP), {LATENCY_CONNECTIONS} clients, under writes", loaded[name]),
            load_row(f"{name}: query-api (HTTP), {LATENCY_CONNECTIONS} clients, beside CPU burners", idle["burned"]),
        ]
        runs = (loaded[name], *idle.values())
        target = RATIO_TARGETS[name]
        beside = loaded[name].p99_ms / idle["burned"].p99_ms
        lines += [
            f"- {name}: query-api / direct at {CONNECTIONS} clients **{ratio:.2f}x** (target ≥ {target}x:"
            f" {verdict(ratio >= target, *runs)}); p99 at {LATENCY_CONNECTIONS} clients {p99:.1f} ms (target ≤ 20 ms:"
            f" {verdict(p99 <= 20, *runs)}); that p99 under writes {slowdown:.2f}x idle, **{beside:.2f}x** beside CPU"
            f" burners as hungry as the writes (target ≤ 1.3x: {verdict(beside <= 1.3, written, *runs)});"
            f" the HTTP floor alone would leave this SQL about {bound:.2f}x",
        ]
    return "\n".join(
        [
            f"### S6: reads over {CONTACTS:,} contacts, each row the median of {ROUNDS} alternating runs of"
            f" {SECONDS / ROUNDS:.0f} s",
            "",
            table(["what", "per second", "p50 ms", "p99 ms"], rows),
            "",
            *lines,
            f"- write load: S2's PATCHes from wrk at {written.rate:.0f}/s ({write_max / 2:.0f}/s asked: half of"
            f" {write_max:.0f}/s, measured just before), failed: {written.failed}; it kept {write_cores:.2f}"
            " of the 2 cores busy, and so did the CPU burners",
            f"- HTTP floor: query-api's /healthz at {CONNECTIONS} clients {floor.rate:.0f}/s, p50"
            f" {floor.p50_ms:.1f} ms; a page whose SQL runs at D/s directly would run at about floor/(floor + D)"
            " of D through gunicorn and Flask",
            f"- data set generated in {generated:.0f} s (bench/dataset.py)",
        ]
    )
