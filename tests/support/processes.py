"""The project's own processes, started as `make run` starts them, on free ports."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYTHONPATH = os.pathsep.join(
    str(ROOT / part)
    for part in ("", "services/command-api", "services/query-api", "services/history-worker", "services/notifier")
)
TIMEOUT_FACTOR = float(os.environ.get("TEST_TIMEOUT_FACTOR", "1"))
LOGS = ROOT / "test-artifacts" / "logs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `condition` until it returns something truthy; fail after `timeout` (scaled) seconds."""
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


class ServiceProcess:
    """One of our processes, its output kept in test-artifacts/logs/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], health_url: str | None) -> None:
        self.name = name
        self.argv = argv
        self.env = {
            **os.environ,
            "PYTHONPATH": PYTHONPATH,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            **env,
        }
        self.health_url = health_url
        self.process: subprocess.Popen[bytes] | None = None
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"

    def start(self) -> "ServiceProcess":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.health_url:
            wait_until(self._healthy, timeout=30, interval=0.1, message=f"{self.name} to be healthy")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log_tail()}")
        try:
            return requests.get(self.health_url, timeout=1).ok  # type: ignore[arg-type]
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
