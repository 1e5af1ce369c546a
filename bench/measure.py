"""Small measuring tools the scenarios share: percentiles, wrk runs, process memory, CPU load, the Markdown table.

The rules every verdict keeps (issue 21): it comes from alternating, repeated runs, the median of at
least ROUNDS; a run with any error (a non-2xx reply, a socket error, a time-out, a client short of
frames) fails it, whatever its figures; a p99 is named so only over MIN_P99_SAMPLES samples or more,
else the tail shown is the maximum and called so; a direct baseline runs in as many processes as the
product it is compared with (`in_processes`).
"""

import math
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

#: Rounds of alternating runs a verdict's median is taken over, at least.
ROUNDS = 3
#: Below this many samples the 99th percentile is one of the few largest, or the largest: a tail figure
#: from fewer is reported as the maximum.
MIN_P99_SAMPLES = 1000


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def tail(samples: Sequence[float]) -> tuple[str, float]:
    """("p99", the 99th percentile) over enough samples to have one, else ("max", the largest)."""
    if len(samples) >= MIN_P99_SAMPLES:
        return "p99", percentile(samples, 0.99)
    return "max", max(samples)


def tail_text(samples: Sequence[float]) -> str:
    """The tail of `samples` in ms as a table shows it: "p99 12.3" or "max 12.3"."""
    name, value = tail(samples)
    return f"{name} {value:.1f}"


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


@dataclass(frozen=True)
class Load:
    """Throughput and latency of one load run, latencies in milliseconds.

    `errors` counts non-2xx replies, `socket_errors` connections refused or broken and requests timed
    out (which have no latency, so that they would otherwise drop out of it); `requests` those answered.
    `p99_ms` is the maximum when `requests` is below MIN_P99_SAMPLES (`tail_name` says which)."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    socket_errors: int = 0
    requests: int = MIN_P99_SAMPLES

    @property
    def failed(self) -> int:
        return self.errors + self.socket_errors

    @property
    def tail_name(self) -> str:
        return "p99" if self.requests >= MIN_P99_SAMPLES else "max"


def alternating(runs: Mapping[str, Callable[[], Load]], rounds: int = ROUNDS) -> dict[str, Load]:
    """Each run `rounds` times (at least ROUNDS), taking turns, so that the machine's drift touches them all
    alike; of each figure, the median over the rounds (their errors and requests summed)."""
    loads: dict[str, list[Load]] = {name: [] for name in runs}
    for _ in range(max(rounds, ROUNDS)):
        for name, measure in runs.items():
            loads[name].append(measure())
    return {
        name: Load(
            median([load.rate for load in samples]),
            median([load.p50_ms for load in samples]),
            median([load.p99_ms for load in samples]),
            sum(load.errors for load in samples),
            sum(load.socket_errors for load in samples),
            min(load.requests for load in samples),
        )
        for name, samples in loads.items()
    }


def sampled_load(latencies_ms: Sequence[float], seconds: float) -> Load:
    """The Load of a run that timed each of its requests itself."""
    if not latencies_ms:
        return Load(0.0, math.inf, math.inf, requests=0)
    return Load(len(latencies_ms) / seconds, median(latencies_ms), tail(latencies_ms)[1], requests=len(latencies_ms))


def in_processes(target: Callable[..., list[float]], arguments: tuple[object, ...], processes: int) -> list[float]:
    """`target(*arguments)` in `processes` processes at once (spawned: no copy of the caller's threads
    and connections), their returned samples merged: a baseline as many processes wide as the product,
    so that no GIL holds it back where the product's workers have none."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        results = pool.starmap(target, [arguments] * processes)
    return [sample for samples in results for sample in samples]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, lua: str, connections: int, seconds: float, *, token: str, threads: int = 2) -> Load:
    """Run wrk with a Lua request script for `seconds`; returns its rate and latency percentiles."""
    with wrk_in_background(url, lua, connections, token=token, threads=threads, seconds=seconds) as load:
        pass
    return load[0]


@contextmanager
def wrk_in_background(
    url: str, lua: str, connections: int, *, token: str, threads: int = 2, seconds: float | None = None
) -> Iterator[list[Load]]:
    """Run wrk with a Lua request script while the block runs (or for `seconds`, waited for at the block's
    end); then the yielded list holds its Load.

    Every request carries `token` as its bearer token: wrk puts its `-H` headers in `wrk.headers` before
    the script runs, and `wrk.format` sends them when the script gives it no headers of its own."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    duration = f"{int(seconds)}s" if seconds is not None else "24h"
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency", "--timeout", "10s"]
    argv += ["-s", script.name]
    argv += ["-H", f"Authorization: Bearer {token}", url]
    result: list[Load] = []
    try:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
            try:
                yield result
            finally:
                if seconds is None:
                    process.send_signal(signal.SIGINT)  # wrk stops and prints what it measured
                output, _ = process.communicate()
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, argv, output)
        result.append(_wrk_load(output))
    finally:
        os.unlink(script.name)


def _wrk_load(output: str) -> Load:
    latency = {
        match[0]: float(match[1]) * _UNITS[match[2]]
        for match in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", output, re.MULTILINE)
    }
    maximum = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    counts = {
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
        "requests": requests,
    }
    if rate == 0 or "99" not in latency or maximum is None:  # next to nothing answered: it must not read as fast
        return Load(rate, math.inf, math.inf, **counts)
    top = latency["99"] if requests >= MIN_P99_SAMPLES else float(maximum.group(1)) * _UNITS[maximum.group(2)]
    return Load(rate, latency["50"], top, **counts)


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident memory of these processes, summed."""
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    return total


def process_tree(pid: int) -> list[int]:
    """The process and its children (a gunicorn master and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def busy_cores(seconds: float) -> float:
    """How many cores the whole machine keeps busy, on average over the next `seconds` (from /proc/stat)."""

    def ticks() -> tuple[int, int]:
        # user nice system idle iowait irq softirq steal (guest time is counted in user already)
        values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    busy_before, total_before = ticks()
    time.sleep(seconds)
    busy_after, total_after = ticks()
    return (os.cpu_count() or 1) * (busy_after - busy_before) / (total_after - total_before)


def _burn(share: float, stop: Event) -> None:
    period = 0.010
    while not stop.is_set():
        until = time.monotonic() + share * period
        while time.monotonic() < until:
            pass
        time.sleep((1 - share) * period)


@contextmanager
def cpu_burners(cores: float, processes: int = 2) -> Iterator[None]:
    """Keep `cores` of CPU busy with plain loops in `processes` processes, in 10 ms periods: a load of the
    same CPU appetite as some other, without its I/O, locks or queries."""
    context = multiprocessing.get_context("spawn")  # no copy of the caller's threads and connections
    stop = context.Event()
    share = min(1.0, cores / processes)
    burners = [context.Process(target=_burn, args=(share, stop), daemon=True) for _ in range(processes)]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        stop.set()
        for burner in burners:
            burner.join()


def load_row(what: str, load: Load) -> tuple[str, str, str, str]:
    """A row of a table of loads: what ran, its rate per second, its p50 and p99 in ms (the maximum, so
    named, from too few samples for a p99), and its failures if any."""
    failed = f" ({load.errors} non-2xx, {load.socket_errors} socket errors/time-outs)" if load.failed else ""
    top = f"{load.p99_ms:.1f}" if load.tail_name == "p99" else f"max {load.p99_ms:.1f}"
    return (what + failed, f"{load.rate:.0f}", f"{load.p50_ms:.1f}", top)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(met: bool, *loads: Load, short: int = 0) -> str:
    """ "met" only if the figures meet the target and no run of `loads` failed a request, and no client was
    `short` of frames; else "NOT met" and why."""
    failed = sum(load.failed for load in loads)
    if failed or short:
        return f"NOT met ({failed} requests failed, {short} clients short)"
    return "met" if met else "NOT met"
