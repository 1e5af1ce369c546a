"""A three-node RabbitMQ cluster under write load (SPEC §10): losing any one node loses nothing, stops nothing.

Every process is given all three nodes in AMQP_URL. While the fault matrix's workload writes, commands
and follows the stream, the node that leads `history-worker.events` is killed with SIGKILL and, once
every process is ready again, started again; then the node the relay leader publishes through. Every
process that was connected to a lost node connects to another; the first read and write after each loss
succeed. The checker then counts, as for the fault matrix: every acknowledged write has its event and
its one history row, no WebSocket client missed a seq; and every quorum queue still has its consumers
and its three members, the returned node caught up with the others.
"""

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from shared.broker import COMMANDS_QUEUE, DEAD_LETTER_QUEUE, HISTORY_QUEUE
from tests.support.checker import Checker, Tap
from tests.support.faults import System, running_system
from tests.support.processes import LOGS, TIMEOUT_FACTOR, wait_until
from tests.support.servers import PrivateRabbit, available
from tests.support.workload import Workload

FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "3"))
RECOVERY_LIMIT_SECONDS = 10.0 * TIMEOUT_FACTOR
QUORUM_QUEUES = (HISTORY_QUEUE, COMMANDS_QUEUE, DEAD_LETTER_QUEUE)
RESULTS = LOGS.parent / "cluster.json"
#: The connection_name of each process of ours that holds a lasting broker connection.
PROCESSES = {"command-api.relay", "command-api.commands", "history-worker", "notifier"}

pytestmark = pytest.mark.skipif(available() is not None, reason=f"private servers cannot run here: {available()}")


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    with running_system(rabbit_nodes=3) as system:
        yield system


def _queues(system: System, *columns: str) -> dict[str, dict[str, object]]:
    """`rabbitmqctl list_queues` of the cluster, asked of any node that answers."""
    for rabbit in system.rabbits:
        if rabbit.answers():
            rows = json.loads(rabbit.ctl("list_queues", "name", *columns, "--formatter", "json"))
            return {row["name"]: row for row in rows}
    raise AssertionError("no node answers")


def _node(system: System, name: str) -> PrivateRabbit:
    return next(rabbit for rabbit in system.rabbits if rabbit.node == name)


def _history_leader(system: System) -> PrivateRabbit:
    return _node(system, str(_queues(system, "leader")[HISTORY_QUEUE]["leader"]))


def _connections(system: System) -> list[tuple[str, PrivateRabbit]]:
    """Each client connection of the cluster: its `connection_name` and the node it ends at (each node has a
    port of its own), asked of every node that answers."""
    seen: dict[str, tuple[str, PrivateRabbit]] = {}
    for rabbit in (rabbit for rabbit in system.rabbits if rabbit.answers()):
        listed = rabbit.ctl("list_connections", "name", "port", "client_properties", "--formatter", "json")
        for row in json.loads(listed):
            names = [value for key, _, value in row["client_properties"] if key == "connection_name"]
            node = next(node for node in system.rabbits if node.port == row["port"])
            seen[row["name"]] = (names[0] if names else "", node)
    return list(seen.values())


def _relay_node(system: System) -> PrivateRabbit:
    """The node the relay leader publishes through."""
    return next(node for name, node in _connections(system) if name == "command-api.relay")


def _caught_up(system: System, queue: str) -> bool:
    """All three members of `queue` are up and have committed as far as its leader."""
    status = json.loads(system.rabbits[0].queues("quorum_status", queue, "--formatter", "json"))
    indexes = {row["Commit Index"] for row in status}
    return len(status) == 3 and len(indexes) == 1 and all(isinstance(index, int) for index in indexes)


@dataclass
class Outage:
    """What one node's loss cost: as the fault matrix counts a fault's recovery, from the kill."""

    recovery_seconds: float | None
    last_ready: str
    first_write: str
    first_read: str
    moved: list[str]  # the processes that were connected to the node and connected again to another


def _kill_and_bring_back(system: System, rabbit: PrivateRabbit) -> Outage:
    """kill -9 the node; once every process is ready on the two left, a first read and write; let the load
    run on without it, then start it again."""
    connections = _connections(system)
    before = Counter(name for name, _ in connections)
    lost = {name for name, node in connections if node is rabbit and name in PROCESSES}
    rabbit.kill()
    first_read = system.answer(lambda http: http.get(f"{system.query_api}/api/contacts", timeout=10))
    outage = Outage(*system.recovery(), first_read, sorted(lost))

    def connected_again() -> bool:
        now = Counter(name for name, _ in _connections(system))
        return all(now[name] >= before[name] for name in lost)

    wait_until(connected_again, timeout=RECOVERY_LIMIT_SECONDS, message=f"{sorted(lost)} to connect to another node")
    time.sleep(FAULT_SECONDS)
    rabbit.start()
    return outage


def test_losing_any_one_node_loses_no_write_and_stops_no_consumer(system: System) -> None:
    assert all(
        len(row["members"]) == 3  # type: ignore[arg-type]
        for name, row in _queues(system, "members").items()
        if name in QUORUM_QUEUES
    ), "every quorum queue lives on all three nodes"
    tap = Tap(system.amqp_url)
    checker = Checker(system.database_url, system.amqp_url, tap)
    try:
        window = checker.open_window()
        workload = Workload(
            system.command_api, system.query_api, system.notifiers, system.amqp_url, system.token
        ).start()
        time.sleep(FAULT_SECONDS)
        outages = [_kill_and_bring_back(system, _history_leader(system))]
        time.sleep(FAULT_SECONDS)
        outages.append(_kill_and_bring_back(system, _relay_node(system)))
        time.sleep(FAULT_SECONDS)
        assert "command-api.relay" in outages[1].moved, outages
        workload.stop_writing()
        wait_until(lambda: checker.settled(window), timeout=60, interval=0.2, message="the events to settle")
        head = checker.head()
        record = workload.stop_watching(head, timeout=30 * TIMEOUT_FACTOR)
        fault = "kill -9 the history queue's leader node, then the relay's node"
        report = checker.report(fault, window, record, head, healed=0)  # a 503 at any time counts
        recoveries = [outage.recovery_seconds for outage in outages]
        report.recovery_seconds = None if None in recoveries else max(r for r in recoveries if r is not None)
        report.last_ready = "; ".join(outage.last_ready for outage in outages)
        report.first_write = next((o.first_write for o in outages if o.first_write != "201"), "201")
        report.first_read = next((o.first_read for o in outages if o.first_read != "200"), "200")
    finally:
        tap.close()
    row = report.as_row() | {"moved": [outage.moved for outage in outages]}
    RESULTS.write_text(json.dumps({"fault_seconds": FAULT_SECONDS, "faults": [row]}, indent=2))
    assert report.acknowledged > 0, report
    assert not report.violations(RECOVERY_LIMIT_SECONDS), report
    consumers = _queues(system, "consumers")
    assert consumers[HISTORY_QUEUE]["consumers"] == 2, "both history workers consume"
    assert consumers[COMMANDS_QUEUE]["consumers"] == 1, "the command consumer consumes"
    for queue in QUORUM_QUEUES:
        wait_until(lambda queue=queue: _caught_up(system, queue), timeout=30, message=f"{queue}'s members to agree")
