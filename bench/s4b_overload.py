"""S4b: overload. Creates at twice what command-api can commit, for OVERLOAD_SECONDS, with the real 20 s deferral.

What command-api can commit is S2's PATCH load at its concurrency, measured first (a PATCH and a create
are the same write path: one reading statement, one writing the change and its outbox row). Then the
creates arrive at twice that rate, each over its own connection, from S4's client processes. Admission
control (COMMAND_API_MAX_WAITING_REQUESTS) is to refuse at once — 503 or 429 with Retry-After — what
cannot be committed in time, and every create it took is to be answered within DELAY + 1 s. While the
creates arrive, a PATCH probe on command-api and a read probe on query-api run, one after the other,
each next to the same probe run idle just before. Last, after the relay drained: every 201 is one
contact and one published event, none without its reply, none twice.
"""

import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

from bench.measure import Load, median, percentile, table, verdict, wrk
from bench.s2_patch import CLIENTS, patch_load, seed
from bench.s4_pending import CLIENT_PROCESSES, DELAY, PROBE_CONNECTIONS, send_creates, stored_and_published
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.read_side import start_query_api
from tests.support.stack import Stack, start_command_api, start_relay

OVERLOAD_SECONDS = float(os.environ.get("BENCH_OVERLOAD_SECONDS", "30"))
PROBE_SECONDS = 3.0
#: A refusal slower than this is not "at once".
AT_ONCE_SECONDS = 1.0

READ_LUA = """
local ids = {%(ids)s}
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function() return wrk.format("GET", "/api/contacts/" .. ids[math.random(#ids)]) end
"""


def run(infra: Infra) -> str:
    stack = Stack(infra)
    tag = uuid.uuid4().hex[:8]
    try:
        base = start_command_api(stack.launch, "bench-command-api-s4b", log_level="WARNING")
        reads = start_query_api(stack.launch, "bench-query-api-s4b", query_api_workers=2, log_level="WARNING")
        start_relay(stack.launch, "bench-relay-s4b", log_level="WARNING")
        port = int(base.rsplit(":", 1)[1])
        token = token_for(create_user(infra.database_url, "editor"))
        ids = seed(infra.database_url, 1_000)
        read_lua = READ_LUA % {"ids": ",".join(map(str, ids))}

        def probes() -> tuple[Load, Load]:
            patches = patch_load(base, token, ids, PROBE_CONNECTIONS, PROBE_SECONDS)
            return patches, wrk(f"{reads}/", read_lua, PROBE_CONNECTIONS, PROBE_SECONDS, token=token)

        patch_load(base, token, ids, CLIENTS, 3)  # warm-up
        capacity = patch_load(base, token, ids, CLIENTS, 5)
        idle_patch, idle_read = probes()
        creates = int(2 * capacity.rate * OVERLOAD_SECONDS) // CLIENT_PROCESSES * CLIENT_PROCESSES
        start_at = time.monotonic() + 2
        with ProcessPoolExecutor(CLIENT_PROCESSES) as pool:
            futures = send_creates(pool, port, token, tag, creates, OVERLOAD_SECONDS, start_at)
            time.sleep(max(0.0, start_at + OVERLOAD_SECONDS / 3 - time.monotonic()))
            busy_patch, busy_read = probes()
            results = [result for future in futures for result in future.result()]
        stored, events = stored_and_published(infra.database_url, tag)
    finally:
        stack.stop()

    accepted = [(elapsed, contact_id) for status, elapsed, contact_id, _ in results if status == 201]
    refused = [(elapsed, named) for status, elapsed, _, named in results if status in (429, 503)]
    other = len(results) - len(accepted) - len(refused)
    accepted_times = [elapsed for elapsed, _ in accepted] or [0.0]
    refused_times = [elapsed for elapsed, _ in refused] or [0.0]
    ids_given = {contact_id for _, contact_id in accepted}
    late = sum(elapsed > DELAY + 1 for elapsed in accepted_times)
    slow_refusals = sum(elapsed > AT_ONCE_SECONDS for elapsed in refused_times)
    unnamed = sum(not named for _, named in refused)
    patch_ratio, read_ratio = busy_patch.p99_ms / idle_patch.p99_ms, busy_read.p99_ms / idle_read.p99_ms
    probes_run = (idle_patch, idle_read, busy_patch, busy_read)
    rows = [
        ("what command-api commits (S2's PATCH load, 5 s)", f"{capacity.rate:.0f}/s"),
        ("creates sent, at twice that", f"{len(results)} over {OVERLOAD_SECONDS:.0f} s"),
        ("answered 201 / refused 429 or 503 / anything else", f"{len(accepted)} / {len(refused)} / {other}"),
        ("201 reply time median / max (s)", f"{median(accepted_times):.2f} / {max(accepted_times):.2f}"),
        (f"201 later than {DELAY + 1:.0f} s", late),
        ("refusal time p50 / p99 / max (s)", "/".join(f"{percentile(refused_times, q):.3f}" for q in (0.5, 0.99, 1))),
        (f"refusals later than {AT_ONCE_SECONDS:.0f} s / without Retry-After", f"{slow_refusals} / {unnamed}"),
        ("distinct ids in 201s / contacts stored / events published", f"{len(ids_given)} / {stored} / {events}"),
        ("PATCH p50 / p99 idle → overloaded (ms)", f"{idle_patch.p50_ms:.1f} / {idle_patch.p99_ms:.1f} → "
         f"{busy_patch.p50_ms:.1f} / {busy_patch.p99_ms:.1f}"),
        ("read p50 / p99 idle → overloaded (ms)", f"{idle_read.p50_ms:.1f} / {idle_read.p99_ms:.1f} → "
         f"{busy_read.p50_ms:.1f} / {busy_read.p99_ms:.1f}"),
    ]  # fmt: skip
    kept = len(ids_given) == len(accepted) == stored == events
    return "\n".join(
        [
            f"### S4b: overload, creates at twice what command-api commits for {OVERLOAD_SECONDS:.0f} s,"
            f" {DELAY:.0f} s deferral",
            "",
            table(["what", "measured"], rows),
            "",
            f"- every accepted create answered within {DELAY + 1:.0f} s, the rest refused at once with Retry-After:"
            f" {verdict(late == slow_refusals == unnamed == other == 0 and bool(refused))}",
            f"- nothing lost or doubled: {verdict(kept)}",
            f"- p99 overloaded / idle: PATCH **{patch_ratio:.2f}×**, read **{read_ratio:.2f}×**"
            f" (target ≤ 1.5×: {verdict(max(patch_ratio, read_ratio) <= 1.5, *probes_run)})",
        ]
    )
