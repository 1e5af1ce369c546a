"""Many WebSocket clients for S1/S3, spread over processes: each records when every frame reached it.

A `Fleet` of N connections runs in ceil(N / PER_PROCESS) processes, each an asyncio loop with the
file-descriptor limit raised to its hard limit. Times are `time.monotonic()` (CLOCK_MONOTONIC: one clock
for every process of the machine). `collect(count)` waits until every reading client has `count` frames
and returns, per frame index, when the last reading client got it; stalled clients (a share of the fleet
that never reads, over a socket with a small receive buffer) are left out. A fleet made with `record`
also keeps each client's seqs and resyncs, for `audit`.
"""

import asyncio
import contextlib
import math
import multiprocessing
import re
import resource
import socket
import time
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

PER_PROCESS = 2500
STALLED_RECEIVE_BUFFER = 4096  # bytes
CONCURRENT_HANDSHAKES = 100
_SEQ = re.compile(rb'"seq": ?(\d+)')
_RESYNC = b'{"type": "resync"'


class Fleet:
    def __init__(
        self, url: str, clients: int, stalled: int = 0, skip_first: bool = False, record: bool = False
    ) -> None:
        """`clients` connections to `url` (the notifier's signed in with `?access_token=`: see
        `tests.support.notifier.ws_url`), the first `stalled` of them never reading; `skip_first` ignores a
        hello; `record` keeps every client's seqs for `audit`."""
        processes = max(1, math.ceil(clients / PER_PROCESS))
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes = []
        for index in range(processes):
            share = clients // processes + (1 if index < clients % processes else 0)
            stalled_share = stalled // processes + (1 if index < stalled % processes else 0)
            ours, theirs = context.Pipe()
            arguments = (url, share, stalled_share, skip_first, record, theirs)
            process = context.Process(target=_run, args=arguments, daemon=True)
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)
        for pipe in self._pipes:
            ready = pipe.recv()
            if ready != "ready":
                raise RuntimeError(f"a client process failed to connect: {ready}")

    def collect(self, count: int, timeout: float = 120.0) -> tuple[list[float], int]:
        """(when the last reading client got each of `count` frames, clients that did not get them all)."""
        for pipe in self._pipes:
            pipe.send(("collect", count, timeout))
        last = [0.0] * count
        incomplete = 0
        for pipe in self._pipes:
            arrivals, missing = pipe.recv()
            last = [max(a, b) for a, b in zip(last, arrivals, strict=True)]
            incomplete += missing
        return last, incomplete

    def audit(self, expected: list[int]) -> tuple[int, int]:
        """(resync frames received, reading clients whose seqs are not exactly `expected`, in order, once)."""
        for pipe in self._pipes:
            pipe.send(("audit", expected))
        resyncs = wrong = 0
        for pipe in self._pipes:
            their_resyncs, their_wrong = pipe.recv()
            resyncs, wrong = resyncs + their_resyncs, wrong + their_wrong
        return resyncs, wrong

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(("close",))
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


async def _stalled_socket(url: str) -> socket.socket:
    """A connected socket whose receive buffer is STALLED_RECEIVE_BUFFER: a client on a slow link, so that
    what it does not read piles up in the server's own buffer, not in the kernel's."""
    where = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RECEIVE_BUFFER)  # before connecting: the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (where.hostname, where.port))
    return sock


def _run(url: str, clients: int, stalled: int, skip_first: bool, record: bool, pipe: Connection) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_fleet(url, clients, stalled, skip_first, record, pipe))


async def _fleet(url: str, clients: int, stalled: int, skip_first: bool, record: bool, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[list[float]] = [[] for _ in range(clients)]
    reading = arrivals[stalled:]
    seqs: list[list[int]] = [[] for _ in range(clients)]
    resyncs = [0]
    opened: list[asyncio.Future[None]] = [loop.create_future() for _ in range(clients)]
    handshakes = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    done = asyncio.Event()
    target = [0]  # frames each reading client is to get in this round
    reached = [0]
    all_reached = asyncio.Event()

    async def client(index: int) -> None:
        async with handshakes:
            sock = await _stalled_socket(url) if index < stalled else None
            ws = await connect(url, open_timeout=120, ping_interval=None, compression=None, max_queue=1, sock=sock)
        opened[index].set_result(None)
        async with ws:
            if index < stalled:
                await done.wait()
                return
            frames = arrivals[index]
            clock = time.monotonic
            if skip_first:
                await ws.recv(decode=False)
            while True:
                frame = await ws.recv(decode=False)
                frames.append(clock())
                if record:
                    found = _SEQ.search(frame)
                    seqs[index].append(int(found.group(1)) if found else -1)
                    resyncs[0] += frame.startswith(_RESYNC)
                if len(frames) == target[0]:
                    reached[0] += 1
                    if reached[0] == len(reading):
                        all_reached.set()

    tasks = [asyncio.create_task(client(index)) for index in range(clients)]
    try:
        await asyncio.wait_for(asyncio.gather(*opened), timeout=300)
    except (TimeoutError, OSError, WebSocketException) as error:
        pipe.send(f"{type(error).__name__}: {error}")
        return
    pipe.send("ready")
    while True:
        command: tuple[Any, ...] = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "close":
            done.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return
        if command[0] == "audit":
            pipe.send((resyncs[0], sum(got != command[1] for got in seqs[stalled:])))
            continue
        _, count, timeout = command
        target[0], reached[0] = count, sum(len(frames) >= count for frames in reading)
        all_reached.clear()
        if reached[0] < len(reading):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_reached.wait(), timeout)
        complete = [frames for frames in reading if len(frames) >= count]
        last = [max(frames[index] for frames in complete) if complete else math.inf for index in range(count)]
        pipe.send((last, len(reading) - len(complete)))
        for frames in reading:
            frames.clear()
