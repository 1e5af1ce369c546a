"""S2a: what checking a token costs a PATCH (issue 17): S2's load through command-api as shipped, next to
the same command-api with its token check taken out (`bench/unchecked_command_api.py`).

Both instances run side by side on one database, each with two workers and the same relay; their runs
take turns, three rounds, and each figure is the median of its rounds. Target: checking costs at most
5 % of the PATCH throughput. pgbench's simple-update at 16 clients is the day's reference.
"""

import functools
import os
from typing import Any

import requests

from bench.measure import alternating, load_row, table, verdict
from bench.s2_patch import CLIENTS, CONTACTS, patch_load, pgbench_simple_update, seed
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra
from tests.support.processes import free_port
from tests.support.stack import Stack, start_command_api, start_relay

SECONDS = float(os.environ.get("BENCH_SECONDS", "15")) / 3
ROUNDS = 3


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
        unchecked = f"http://127.0.0.1:{port}"
        start_relay(stack.launch, "bench-relay", log_level="WARNING")
        ids = seed(infra.database_url, CONTACTS)
        halves = {"checked": (checked, ids[: CONTACTS // 2]), "unchecked": (unchecked, ids[CONTACTS // 2 :])}
        # Each side is what it says: a token no key signed is refused by one and taken by the other.
        forged = {"Authorization": "Bearer not-a-token"}
        assert requests.get(f"{checked}/api/session", headers=forged, timeout=10).status_code == 401
        assert requests.get(f"{unchecked}/api/session", headers=forged, timeout=10).status_code == 200
        for base, own in halves.values():
            patch_load(base, token, own, CLIENTS, 2)  # warm-up
        runs = {name: functools.partial(patch_load, b, token, o, CLIENTS, SECONDS) for name, (b, o) in halves.items()}
        loads = alternating(runs, ROUNDS)
        pgbench_tps = pgbench_simple_update(infra.database_url, CLIENTS, SECONDS)
    finally:
        stack.stop()
    on, off = loads["checked"], loads["unchecked"]
    ratio = on.rate / off.rate
    rows = [
        load_row("command-api as shipped (token checked)", on),
        load_row("the same with the check taken out", off),
        ("pgbench simple-update (the day's reference)", f"{pgbench_tps:.0f}", "", ""),
    ]
    return "\n".join(
        [
            f"### S2a: PATCH at {CLIENTS} clients, tokens checked and not, median of {ROUNDS} × {SECONDS:.0f} s",
            "",
            table(["what", "per second", "p50 ms", "p99 ms"], rows),
            "",
            f"- checked / unchecked: **{ratio:.2f}×** (target ≥ 0.95×: {verdict(ratio >= 0.95)});"
            f" non-2xx replies: {on.errors + off.errors}",
        ]
    )
