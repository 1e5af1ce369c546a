"""Small measuring tools the scenarios share: percentiles, wrk runs, process memory, CPU load, the Markdown table."""

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


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


@dataclass(frozen=True)
class Load:
    """Throughput and latency of one load run, latencies in milliseconds."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int = 0


def alternating(runs: Mapping[str, Callable[[], Load]], rounds: int) -> dict[str, Load]:
    """Each run `rounds` times, taking turns, so that the machine's drift touches them all alike; of each
    figure, the median over the rounds (their errors summed)."""
    loads: dict[str, list[Load]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, measure in runs.items():
            loads[name].append(measure())
    return {
        name: Load(
            median([load.rate for load in samples]),
            median([load.p50_ms for load in samples]),
            median([load.p99_ms for load in samples]),
            sum(load.errors for load in samples),
        )
        for name, samples in loads.items()
    }


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
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency", "-s", script.name]
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
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if rate == 0 or "99" not in latency:  # next to nothing answered: no latency must read as fast
        return Load(rate, math.inf, math.inf)
    return Load(rate, latency["50"], latency["99"], int(errors.group(1)) if errors else 0)


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
    """A row of a table of loads: what ran, its rate per second, its p50 and p99 in ms."""
    return (what, f"{load.rate:.0f}", f"{load.p50_ms:.1f}", f"{load.p99_ms:.1f}")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
