"""S2a: what checking a token costs a PATCH (issue 17): S2's load through command-api as shipped, next to
the same command-api with its token check taken out (`bench/unchecked_command_api.py`).

Both instances, two workers each, run on one database with one relay, and are loaded at the same time,
half of S2's clients each (which one starts first alternates): whatever else the machine is doing then
slows both alike, and the one that spends more per request answers fewer. Five such rounds; the verdict
is the median of the rounds' ratios (each round's ratio is listed too). Target: checking costs at most
5 % of the PATCH throughput. pgbench's simple-update at 16 clients is the day's reference.
"""

import os
from contextlib import ExitStack
from typing import Any

import requests

from bench.measure import Load, load_row, median, table, verdict, wrk_in_background
from bench.s2_patch import CLIENTS, CONTACTS, PATCH_LUA, patch_load, pgbench_simple_update, seed
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.processes import free_port
from tests.support.stack import Stack, start_command_api, start_relay

SECONDS = float(os.environ.get("BENCH_SECONDS", "15")) / 2
ROUNDS = 5
SIDES = ("checked", "unchecked")


def at_once(bases: dict[str, str], ids: dict[str, list[int]], token: str, first: str) -> dict[str, Load]:
    """One round: both sides under PATCH load together, CLIENTS / 2 connections each, `first`'s load
    started a moment before the other's."""
    with ExitStack() as running:
        loads = {
            side: running.enter_context(
                wrk_in_background(
                    f"{bases[side]}/", PATCH_LUA % {"ids": ",".join(map(str, ids[side]))}, CLIENTS // 2,
                    token=token, threads=1, seconds=SECONDS,
                )
            )
            for side in sorted(SIDES, key=lambda side: side != first)
        }  # fmt: skip
    return {side: load[0] for side, load in loads.items()}


def run(infra: Infra) -> str:
    stack = Stack(infra)
    try:
        user = create_user(infra.database_url, "editor")
        token = token_for(user)
        options: dict[str, Any] = {"create_reply_delay_seconds": 0, "log_level": "WARNING"}
        checked = start_command_api(stack.launch, "bench-command-api-checked", **options)
        port = free_port()
        stack.launch(
            "bench-command-api-unchecked",
            ["gunicorn", "-c", "services/command-api/gunicorn.conf.py", "bench.unchecked_command_api:create_app()"],
            port=port, command_api_port=port, command_api_workers=2, bench_caller_id=user["id"], **options,
        )  # fmt: skip
        bases = {"checked": checked, "unchecked": f"http://127.0.0.1:{port}"}
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        contacts = seed(infra.database_url, CONTACTS)
        ids = {"checked": contacts[: CONTACTS // 2], "unchecked": contacts[CONTACTS // 2 :]}
        # Each side is what it says: a token no key signed is refused by one and taken by the other.
        forged = {"Authorization": "Bearer not-a-token"}
        assert requests.get(f"{checked}/api/session", headers=forged, timeout=10).status_code == 401
        assert requests.get(f"{bases['unchecked']}/api/session", headers=forged, timeout=10).status_code == 200
        for side in SIDES:
            patch_load(bases[side], token, ids[side], CLIENTS, 2)  # warm-up
        rounds = [at_once(bases, ids, token, first=SIDES[n % 2]) for n in range(ROUNDS)]  # each starts first in turn
        pgbench_tps = pgbench_simple_update(infra.database_url, CLIENTS, SECONDS)
    finally:
        stack.stop()
    ratios = [each["checked"].rate / each["unchecked"].rate for each in rounds]
    ratio = median(ratios)
    errors = sum(load.errors for each in rounds for load in each.values())
    rows = [
        *(load_row(f"round {n}: {side}", each[side]) for n, each in enumerate(rounds, 1) for side in SIDES),
        ("pgbench simple-update (the day's reference)", f"{pgbench_tps:.0f}", "", ""),
    ]
    return "\n".join(
        [
            f"### S2a: PATCH, tokens checked and not, {CLIENTS // 2} clients each at once, {ROUNDS} × {SECONDS:.1f} s",
            "",
            table(["what", "per second", "p50 ms", "p99 ms"], rows),
            "",
            f"- checked / unchecked, each round: {', '.join(f'{r:.3f}×' for r in ratios)}",
            f"- median: **{ratio:.3f}×** (target ≥ 0.95×: {verdict(ratio >= 0.95 and errors == 0)});"
            f" non-2xx replies: {errors}",
        ]
    )
