"""The whole system on servers of its own, and the faults the matrix strikes it with (SPEC §9).

Every process runs as `make run` runs it, two of each where the matrix kills one of two. All of them
reach RabbitMQ through a TCP proxy per node (to cut the broker off; on a cluster, AMQP_URL names every
node's proxy), the relays reach PostgreSQL through another (to cut the database off from the relay
alone). Heartbeats are short (`?heartbeat=` in the URL), so that a paused process is noticed within
seconds. A process the matrix kills is started again, as a supervisor would.
"""

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from shared.broker import ensure_topology
from shared.migrate import create_database_if_absent, upgrade
from tests.support.commands import start_command_consumer
from tests.support.data import new_contact
from tests.support.identity import create_user, signed_in, token_for
from tests.support.infra import Infra
from tests.support.notifier import start_notifier
from tests.support.processes import ServiceProcess, wait_until
from tests.support.read_side import start_history_worker, start_query_api
from tests.support.servers import PrivatePostgres, PrivateRabbit, Servers, private_servers
from tests.support.stack import Stack, start_command_api, start_relay
from tests.support.tcp_proxy import TcpProxy, proxied

HEARTBEAT_SECONDS = 2
#: A pause that the broker notices: RabbitMQ drops a connection after about two missed heartbeats.
PAUSE_SECONDS = 3 * HEARTBEAT_SECONDS + 1


@dataclass
class System:
    postgres: PrivatePostgres
    rabbits: list[PrivateRabbit]  # one node, or a cluster's
    database_url: str
    amqp_url: str  # straight to the broker (every node), for the clients and the checker
    broker_proxies: list[TcpProxy]  # one per node, in the order of `rabbits`
    relay_database_proxy: TcpProxy
    command_api: str
    query_api: str
    notifiers: list[str]
    processes: dict[str, ServiceProcess]
    stack: Stack
    token: str  # an editor's bearer token, for the workload and the matrix's own requests

    @classmethod
    def start(cls, servers: Servers) -> "System":
        postgres = servers.postgres
        database_url = postgres.url.rsplit("/", 1)[0] + "/contacts"
        create_database_if_absent(database_url)
        upgrade(database_url)
        token = token_for(create_user(database_url, "editor"))
        ensure_topology(servers.amqp_url)
        broker_proxies, proxied_urls = zip(*(proxied(rabbit.url, 5672) for rabbit in servers.rabbits), strict=True)
        relay_database_proxy, relay_database = proxied(database_url, 5432)
        amqp = ",".join(f"{url}?heartbeat={HEARTBEAT_SECONDS}" for url in proxied_urls)
        stack = Stack(Infra(database_url, amqp, "", "/", "guest", "guest"))
        common = {"create_reply_delay_seconds": 1, "log_level": "WARNING"}
        processes: dict[str, ServiceProcess] = {}
        for name in ("relay-a", "relay-b"):
            processes[name] = start_relay(stack.launch, name, database_url=relay_database, relay_poll_seconds=0.2)
        command_api = start_command_api(stack.launch, "command-api", command_api_workers=2, **common)
        processes["command-api"] = stack.processes[-1]
        query_api = start_query_api(stack.launch, "query-api", query_api_workers=1, log_level="WARNING")
        processes["query-api"] = stack.processes[-1]
        processes["command-consumer"] = start_command_consumer(stack.launch, "command-consumer", **common)
        for name in ("history-worker-a", "history-worker-b"):
            processes[name] = start_history_worker(stack.launch, name, log_level="WARNING")[0]
        notifiers = []
        for name in ("notifier-a", "notifier-b"):
            base, processes[name] = start_notifier(stack.launch, name, log_level="WARNING")
            notifiers.append(base)
        return cls(
            postgres, servers.rabbits, database_url, servers.amqp_url, list(broker_proxies), relay_database_proxy,
            command_api, query_api, notifiers, processes, stack, token,
        )  # fmt: skip

    def stop(self) -> None:
        self.stack.stop()
        for proxy in self.broker_proxies:
            proxy.close()
        self.relay_database_proxy.close()

    def ready(self) -> bool:
        return not self.unready()

    def unready(self) -> list[str]:
        """The processes not answering their readiness probe; "relay" while no relay leads."""
        waiting = [name for name, process in self.processes.items() if not _ready(name, process)]
        return waiting if self.leader() is not None else [*waiting, "relay"]

    def answer(self, send: Callable[[requests.Session], requests.Response]) -> str:
        """How one request, sent on a connection of its own with the workload's token, was answered."""
        try:
            with signed_in(requests.Session(), self.token) as http:
                return str(send(http).status_code)
        except requests.RequestException as error:
            return type(error).__name__

    def recovery(self) -> tuple[float | None, str, str]:
        """Seconds from now (a fault's healing) until every process is ready again (None: not within a
        minute), the processes that were ready last, and how the first write after that was answered
        (SPEC §9: it succeeds, at its first attempt)."""
        healed = time.monotonic()
        last: list[str] = []
        while waiting := self.unready():
            if time.monotonic() > healed + 60:
                return None, ", ".join(waiting), "not tried"
            last = waiting
            time.sleep(0.1)
        ready = round(time.monotonic() - healed, 2)
        first = self.answer(lambda http: http.post(f"{self.command_api}/api/contacts", json=new_contact(), timeout=10))
        return ready, ", ".join(last), first

    def leader(self) -> str | None:
        for name in ("relay-a", "relay-b"):
            url = self.processes[name].health_url
            try:
                if url and "relay_is_leader 1.0" in requests.get(url, timeout=2).text:
                    return name
            except requests.RequestException:
                pass
        return None

    def restart(self, name: str) -> None:
        """Start a killed process again once all of its group is gone (gunicorn's workers leave by themselves)."""
        process = self.processes[name]
        assert process.process is not None
        process.process.wait(timeout=30)
        pgid = process.process.pid
        wait_until(lambda: not _group_alive(pgid), timeout=30, message=f"{name}'s group to exit")
        process.start()


@contextlib.contextmanager
def running_system(rabbit_nodes: int = 1) -> Iterator[System]:
    """The whole system on servers of its own (`rabbit_nodes` RabbitMQ nodes, clustered), every process
    ready; stopped and removed afterwards."""
    with private_servers(rabbit_nodes=rabbit_nodes) as servers:
        system = System.start(servers)
        try:
            wait_until(system.ready, timeout=60, interval=0.2, message="every process to be ready")
            yield system
        finally:
            system.stop()


def _ready(name: str, process: ServiceProcess) -> bool:
    if process.process is None or process.process.poll() is not None or process.health_url is None:
        return False
    probe = process.health_url if name.startswith("relay") else process.health_url.replace("/healthz", "/readyz")
    try:
        return requests.get(probe, timeout=2).ok
    except requests.RequestException:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _kill(system: System, name: str) -> None:
    process = system.processes[name].process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)


def _pause(system: System, name: str) -> None:
    process = system.processes[name].process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    time.sleep(PAUSE_SECONDS)
    os.kill(process.pid, signal.SIGCONT)


@dataclass(frozen=True)
class Fault:
    """`strike` strikes, holds a lasting fault for the seconds it is given, heals, and returns when it is over."""

    name: str
    strike: Callable[[System, float], None]


def _kill_leader(system: System, _hold: float) -> None:
    leader = system.leader()
    assert leader is not None, "no relay leads"
    _kill(system, leader)
    system.restart(leader)


def _kill_command_api_worker(system: System, _hold: float) -> None:
    master = system.processes["command-api"].process
    assert master is not None
    workers = _children(master.pid)
    assert workers, "gunicorn has no workers"
    os.kill(workers[0], signal.SIGKILL)


def _kill_and_restart(name: str) -> Callable[[System, float], None]:
    def strike(system: System, _hold: float) -> None:
        _kill(system, name)
        system.restart(name)

    return strike


def _pause_leader(system: System, _hold: float) -> None:
    leader = system.leader()
    assert leader is not None, "no relay leads"
    _pause(system, leader)


def _restart_rabbitmq(system: System, _hold: float) -> None:
    for rabbit in system.rabbits:
        rabbit.restart()


def _cut(proxies: Callable[[System], list[TcpProxy]]) -> Callable[[System, float], None]:
    def strike(system: System, hold: float) -> None:
        for proxy in proxies(system):
            proxy.cut()
        time.sleep(hold)
        for proxy in proxies(system):
            proxy.restore()

    return strike


def _restart_postgres(system: System, _hold: float) -> None:
    system.postgres.restart_immediately()


FAULTS = [
    Fault("kill -9 the relay leader (a standby running)", _kill_leader),
    Fault("kill -9 one command-api worker", _kill_command_api_worker),
    Fault("kill -9 the gunicorn master of command-api", _kill_and_restart("command-api")),
    Fault("kill -9 the command consumer", _kill_and_restart("command-consumer")),
    Fault("kill -9 one of two history workers", _kill_and_restart("history-worker-a")),
    Fault("kill -9 one of two notifiers", _kill_and_restart("notifier-a")),
    Fault("SIGSTOP the relay leader past its heartbeat, then SIGCONT", _pause_leader),
    Fault("SIGSTOP a history worker past its heartbeat, then SIGCONT", lambda s, _h: _pause(s, "history-worker-a")),
    Fault("restart RabbitMQ", _restart_rabbitmq),
    Fault("cut RabbitMQ off from every process, then back", _cut(lambda s: s.broker_proxies)),
    Fault("restart PostgreSQL in immediate mode", _restart_postgres),
    Fault("cut PostgreSQL off from the relays alone, then back", _cut(lambda s: [s.relay_database_proxy])),
]
