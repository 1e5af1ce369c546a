"""Watching a consumer process under hostile input: that it consumes, and that a test cost it nothing."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.infra import Infra
from tests.support.processes import LOGS, ServiceProcess, wait_until
from tests.support.stack import Launch, Stack


def log_size(log: Path) -> int:
    """Where a log ends now (logs are appended to across runs): read on from here to see only what comes."""
    return log.stat().st_size if log.exists() else 0


def log_since(log: Path, offset: int) -> str:
    with log.open("rb") as opened:
        opened.seek(offset)
        return opened.read().decode(errors="replace")


def wait_consuming(process: ServiceProcess, queue: str, log_from: int) -> None:
    """Wait until the process logs, after `log_from`, that it consumes `queue`."""
    wait_until(
        lambda: f"consuming {queue}" in log_since(process.log_path, log_from), message=f"{process.name} to consume"
    )


@contextlib.contextmanager
def unharmed(process: ServiceProcess, queue: str) -> Iterator[None]:
    """Fail unless, after the block, it is the same process, logged no ERROR and did not consume `queue` anew
    (which would mean it lost its connection)."""
    assert process.process is not None
    pid, log_from = process.process.pid, log_size(process.log_path)
    yield
    written = log_since(process.log_path, log_from)
    assert process.process.poll() is None and process.process.pid == pid, f"{process.name} died"
    assert '"level": "ERROR"' not in written, written
    assert f"consuming {queue}" not in written, f"{process.name} reconnected:\n{written}"


@contextlib.contextmanager
def consuming(
    infra: Infra, queue: str, name: str, start: Callable[[Launch, str], ServiceProcess]
) -> Iterator[ServiceProcess]:
    """The process `start` launches as `name`, once it consumes `queue`; stopped after the block."""
    stack = Stack(infra)
    log_from = log_size(LOGS / f"{name}.log")
    try:
        process = start(stack.launch, name)
        wait_consuming(process, queue, log_from)
        yield process
    finally:
        stack.stop()
