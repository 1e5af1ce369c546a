"""S2's PATCH load, as background for the read-side scenarios: its maximum rate, and a paced share of it.

Both are wrk runs of S2's own script, so that the load costs the machine what command-api does with it,
next to nothing for the client that makes it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from bench.measure import Load, wrk, wrk_in_background
from bench.s2_patch import CLIENTS, PATCH_LUA, patch_load, seed

#: Connections of the paced load: many, each pausing long, so that a reply's latency, which the reads
#: around it change, moves the rate little.
PACED_CONNECTIONS = 128
#: Each connection waits this long between a reply and its next PATCH: wrk's way to pace a load.
_PACED_LUA = PATCH_LUA + "\ndelay = function() return %(delay_ms)d end\n"


def max_patch_rate(base: str, token: str, ids: list[int], seconds: float) -> float:
    """PATCHes per second command-api sustains at S2's concurrency, sent with an editor's `token`."""
    return patch_load(base, token, ids, CLIENTS, seconds).rate


@contextmanager
def paced_patches(base: str, token: str, ids: list[int], rate: float) -> Iterator[list[Load]]:
    """PATCH random contacts at about `rate` per second, with an editor's `token`, while the block runs;
    then the yielded list holds the Load wrk measured, its rate the true one. A connection's pause is its
    share of the interval less a reply's median latency (which wrk times without the pause), taken from a
    3-second run first."""
    interval_ms = PACED_CONNECTIONS * 1000 / rate
    trial = wrk(f"{base}/", _paced(ids, interval_ms), PACED_CONNECTIONS, 3, token=token)
    delay_ms = max(0.0, interval_ms - trial.p50_ms)
    with wrk_in_background(f"{base}/", _paced(ids, delay_ms), PACED_CONNECTIONS, token=token) as load:
        yield load


def _paced(ids: list[int], delay_ms: float) -> str:
    return _PACED_LUA % {"ids": ",".join(map(str, ids)), "delay_ms": delay_ms}


__all__ = ["max_patch_rate", "paced_patches", "seed"]
