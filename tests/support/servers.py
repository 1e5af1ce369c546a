"""PostgreSQL servers and RabbitMQ nodes of a test's own, from the machine's Debian packages.

The fault matrix restarts, kills and cuts them off; the cluster tests (SPEC §10) run three RabbitMQ nodes
clustered and a hot-standby streaming replica of the PostgreSQL server. The machine's own servers, which
other test runs and a running stack may be using, are never touched: each of ours lives in a temporary
directory with ports (and, for RabbitMQ, a node name, a distribution port and an Erlang cookie) of its
own, and is removed when the test is done.
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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

    def __init__(self, base: Path, name: str = "postgres") -> None:
        self.port = free_port()
        self._owner = "postgres" if os.geteuid() == 0 else None
        self._dir = base / name
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

    def execute(self, statement: str) -> object:
        """Run one statement as the superuser; its first value."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(statement).fetchone()
        return row[0] if row else None


class PrivateReplica(PrivatePostgres):
    """A hot standby of `primary`, streaming its WAL: a base backup in a directory of its own, another port."""

    def __init__(self, base: Path, primary: PrivatePostgres) -> None:
        super().__init__(base, "replica")
        self._primary = primary

    def start(self) -> None:
        if not self._data.exists():
            backup = [
                str(PG_BIN / "pg_basebackup"), "-D", str(self._data), "-h", "127.0.0.1", "-p", str(self._primary.port),
                "-U", "postgres", "-X", "stream", "-c", "fast", "-R", "--no-sync",
            ]  # fmt: skip
            subprocess.run(_as_owner(self._owner, backup), check=True, capture_output=True, timeout=300)
        self._pg_ctl("start")

    def pause_replay(self) -> None:
        self.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.execute("SELECT pg_wal_replay_resume()")


class PrivateRabbit:
    """One RabbitMQ node with a name, ports, data directory and Erlang cookie of its own, and no plugins."""

    def __init__(self, base: Path, name: str = "rabbitmq", cookie: str | None = None) -> None:
        self.port = free_port()
        self.node = f"contacts-test-{os.getpid()}-{self.port}@localhost"
        self.cookie = cookie or secrets.token_hex(16)  # never the machine's: its node cannot be reached with ours
        self._dir = base / name
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
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-setcookie {self.cookie}",
        }

    def start(self) -> None:
        self.launch()
        self.wait_started()

    def launch(self) -> None:
        """Start the node and return at once (`wait_started` waits for it): nodes of a cluster boot side by side."""
        subprocess.run([RABBITMQ_SERVER, "-detached"], env=self._env, check=True, capture_output=True, timeout=60)

    def wait_started(self) -> None:
        self._ctl("wait", str(self._dir / "pid"), "--timeout", "120")
        wait_until(self.answers, timeout=60, interval=0.2, message=f"RabbitMQ node {self.node} to take connections")

    def stop(self) -> None:
        self._ctl("stop")

    def join(self, other: "PrivateRabbit") -> None:
        """Make this node a member of `other`'s cluster (its data is reset)."""
        self._ctl("stop_app")
        self._ctl("join_cluster", other.node)
        self._ctl("start_app")
        wait_until(self.answers, timeout=60, interval=0.2, message=f"RabbitMQ node {self.node} to take connections")

    def kill(self) -> None:
        """kill -9 the node's Erlang VM: no goodbye to its clients or its cluster."""
        pid = int((self._dir / "pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.answers(), timeout=30, interval=0.1, message=f"{self.node} to go")

    def ctl(self, *args: str) -> str:
        """rabbitmqctl's output for this node."""
        return self._ctl(*args)

    def restart(self) -> None:
        self.stop()
        self.start()

    def answers(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
            return True
        except pika.exceptions.AMQPError:
            return False

    def _ctl(self, *args: str, tool: str = "rabbitmqctl") -> str:
        argv = [tool, "--erlang-cookie", self.cookie, "-n", self.node, *args]
        return subprocess.run(argv, env=self._env, check=True, capture_output=True, text=True, timeout=180).stdout

    def queues(self, *args: str) -> str:
        return self._ctl(*args, tool="rabbitmq-queues")


@dataclass
class Servers:
    postgres: PrivatePostgres
    rabbits: list[PrivateRabbit]  # one node, or the members of one cluster
    replica: PrivateReplica | None = None

    @property
    def amqp_url(self) -> str:
        """Every node's address, comma-separated, as AMQP_URL takes them (SPEC §10)."""
        return ",".join(rabbit.url for rabbit in self.rabbits)


@contextlib.contextmanager
def private_servers(rabbit_nodes: int = 1, replica: bool = False) -> Iterator[Servers]:
    """A PostgreSQL server and RabbitMQ nodes (more than one: clustered, with one cookie of their own), and
    with `replica` a streaming replica of the server; started side by side, stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="contacts-servers-"))
    base.chmod(0o755)
    cookie = secrets.token_hex(16)
    postgres = PrivatePostgres(base)
    rabbits = [PrivateRabbit(base, f"rabbitmq-{index}", cookie) for index in range(rabbit_nodes)]
    servers = Servers(postgres, rabbits, PrivateReplica(base, postgres) if replica else None)
    try:
        for rabbit in rabbits:
            rabbit.launch()
        postgres.start()
        if servers.replica:
            servers.replica.start()
        for rabbit in rabbits:
            rabbit.wait_started()
        for rabbit in rabbits[1:]:
            rabbit.join(rabbits[0])
        yield servers
    finally:
        stops = (
            [rabbit.stop for rabbit in rabbits] + [postgres.stop] + ([servers.replica.stop] if servers.replica else [])
        )
        for stop in stops:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                stop()
        shutil.rmtree(base, ignore_errors=True)
