"""A PostgreSQL server and a RabbitMQ node of a test's own, from the machine's Debian packages.

The fault matrix restarts, kills and cuts them off; the machine's own servers, which other test runs and
a running stack may be using, are never touched. Each lives in a temporary directory with ports of
its own and is removed when the test is done.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg

from tests.support.processes import free_port, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_SERVER = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"


def available() -> str | None:
    """Why private servers cannot run here, or None when they can."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL server binaries in {PG_BIN}"
    if not Path(RABBITMQ_SERVER).exists():
        return "no rabbitmq-server"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (initdb refuses root)"
    return None


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    """Run as `owner` when we are root: PostgreSQL and RabbitMQ refuse to run as root, or switch by themselves."""
    return ["runuser", "-u", owner, "--", *argv] if owner and os.geteuid() == 0 else argv


class PrivatePostgres:
    """One PostgreSQL cluster in a directory of its own, listening on 127.0.0.1 at a free port."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self._owner = "postgres" if os.geteuid() == 0 else None
        self._dir = base / "postgres"
        self._dir.mkdir()
        if self._owner:
            shutil.chown(self._dir, self._owner)
        self._data = self._dir / "data"
        self._log = self._dir / "server.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        argv = [str(PG_BIN / "pg_ctl"), "-D", str(self._data), "-l", str(self._log), "-o", options, "-w", *args]
        subprocess.run(_as_owner(self._owner, argv), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if not self._data.exists():
            initdb = [str(PG_BIN / "initdb"), "-D", str(self._data), "-A", "trust", "-U", "postgres", "--no-sync"]
            subprocess.run(_as_owner(self._owner, initdb), check=True, capture_output=True, timeout=120)
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart_immediately(self) -> None:
        """A crash and restart: no checkpoint, every connection killed, recovery from the WAL."""
        self._pg_ctl("-m", "immediate", "restart")

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


class PrivateRabbit:
    """One RabbitMQ node with a name, ports and data directory of its own, and no plugins."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.node = f"contacts-test-{os.getpid()}-{self.port}@localhost"
        self._dir = base / "rabbitmq"
        self._dir.mkdir()
        (self._dir / "enabled_plugins").write_text("[].\n")
        (self._dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\ndisk_free_limit.absolute = 50MB\n"
        )
        if os.geteuid() == 0:  # the Debian script runs the node as the rabbitmq user
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self._dir)], check=True)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self._dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self._dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self._dir / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self._dir / "pid"),
        }

    def start(self) -> None:
        subprocess.run([RABBITMQ_SERVER, "-detached"], env=self._env, check=True, capture_output=True, timeout=60)
        self._ctl("wait", str(self._dir / "pid"), "--timeout", "120")
        wait_until(self.answers, timeout=60, interval=0.2, message=f"RabbitMQ node {self.node} to take connections")

    def stop(self) -> None:
        self._ctl("stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def answers(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
            return True
        except pika.exceptions.AMQPError:
            return False

    def _ctl(self, *args: str) -> None:
        argv = ["rabbitmqctl", "-n", self.node, *args]
        subprocess.run(argv, env=self._env, check=True, capture_output=True, timeout=180)


@contextlib.contextmanager
def private_servers() -> Iterator[tuple[PrivatePostgres, PrivateRabbit]]:
    """A PostgreSQL server and a RabbitMQ node, started side by side, stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="contacts-servers-"))
    base.chmod(0o755)
    postgres, rabbit = PrivatePostgres(base), PrivateRabbit(base)
    try:
        postgres.start()
        rabbit.start()
        yield postgres, rabbit
    finally:
        for stop in (postgres.stop, rabbit.stop):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                stop()
        shutil.rmtree(base, ignore_errors=True)
