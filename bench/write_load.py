"""S2's PATCH load, as background for the read-side scenarios: its maximum rate, and a paced share of it."""

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from bench.s2_patch import CLIENTS, patch_load, seed


def max_patch_rate(base: str, ids: list[int], seconds: float) -> float:
    """PATCHes per second command-api sustains at S2's concurrency."""
    return patch_load(base, ids, CLIENTS, seconds).rate


@contextmanager
def paced_patches(base: str, ids: list[int], rate: float, threads: int = 8) -> Iterator[list[int]]:
    """PATCH random contacts at `rate` per second in the background; yields the count of replies so far."""
    stop = threading.Event()
    done = [0]
    interval = threads / rate

    def client() -> None:
        with requests.Session() as http:
            due = time.monotonic()
            while not stop.is_set():
                phone = f"+1 555 {random.randrange(10**7):07d}"
                http.patch(f"{base}/api/contacts/{random.choice(ids)}", json={"phone": phone}, timeout=30)
                done[0] += 1
                due += interval
                stop.wait(max(0.0, due - time.monotonic()))

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield done
    finally:
        stop.set()
        for worker in workers:
            worker.join()


__all__ = ["max_patch_rate", "paced_patches", "seed"]
