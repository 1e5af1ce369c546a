"""A three-node RabbitMQ cluster under write load (SPEC §10): losing any one node loses nothing, stops nothing.

Every process is given all three nodes in AMQP_URL. While the fault matrix's workload writes, commands
and follows the stream, the node that leads `history-worker.events` is killed with SIGKILL and, once
every process is ready again, started again; then the node the relay leader publishes through. The
checker then counts, as for the fault matrix: every acknowledged write has its event and its one
history row, no WebSocket client missed a seq; and every quorum queue still has its consumers and its
three members, the returned node caught up with the others.
"""

import json
import os
import time
from collections.abc import Iterator

import pytest

from shared.broker import COMMANDS_QUEUE, DEAD_LETTER_QUEUE, HISTORY_QUEUE
from tests.support.checker import Checker, Tap
from tests.support.faults import System
from tests.support.processes import LOGS, TIMEOUT_FACTOR, wait_until
from tests.support.servers import PrivateRabbit, available, private_servers
from tests.support.workload import Workload

FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "3"))
RECOVERY_LIMIT_SECONDS = 10.0 * TIMEOUT_FACTOR
QUORUM_QUEUES = (HISTORY_QUEUE, COMMANDS_QUEUE, DEAD_LETTER_QUEUE)
RESULTS = LOGS.parent / "cluster.json"

pytestmark = pytest.mark.skipif(available() is not None, reason=f"private servers cannot run here: {available()}")


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    with private_servers(rabbit_nodes=3) as servers:
        system = System.start(servers)
        try:
            wait_until(system.ready, timeout=60, interval=0.2, message="every process to be ready")
            yield system
        finally:
            system.stop()


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


def _relay_node(system: System) -> PrivateRabbit:
    """The node the relay leader's connection ends at: each node has a port of its own."""
    for rabbit in system.rabbits:
        for row in json.loads(rabbit.ctl("list_connections", "port", "client_properties", "--formatter", "json")):
            if ["connection_name", "longstr", "command-api.relay"] in row["client_properties"]:
                return next(node for node in system.rabbits if node.port == row["port"])
    raise AssertionError("the relay is connected to no node")


def _caught_up(system: System, queue: str) -> bool:
    """All three members of `queue` are up and have committed as far as its leader."""
    status = json.loads(system.rabbits[0].queues("quorum_status", queue, "--formatter", "json"))
    indexes = {row["Commit Index"] for row in status}
    return len(status) == 3 and len(indexes) == 1 and all(isinstance(index, int) for index in indexes)


def _kill_and_bring_back(system: System, rabbit: PrivateRabbit) -> float:
    """kill -9 the node, let the load run on without it, start it again; seconds until every process was
    ready while it was down."""
    rabbit.kill()
    killed = time.monotonic()
    wait_until(system.ready, timeout=RECOVERY_LIMIT_SECONDS, interval=0.1, message="every process ready on two nodes")
    ready = time.monotonic() - killed
    time.sleep(FAULT_SECONDS)
    rabbit.start()
    return ready


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
        history_leader = _history_leader(system)
        ready_without_leader = _kill_and_bring_back(system, history_leader)
        time.sleep(FAULT_SECONDS)
        relay_node = _relay_node(system)
        ready_without_relay_node = _kill_and_bring_back(system, relay_node)
        time.sleep(FAULT_SECONDS)
        workload.stop_writing()
        wait_until(lambda: checker.settled(window), timeout=60, interval=0.2, message="the events to settle")
        head = checker.head()
        record = workload.stop_watching(head, timeout=30 * TIMEOUT_FACTOR)
        fault = "kill -9 the history queue's leader node, then the relay's node"
        report = checker.report(fault, window, record, head, 0)
        report.recovery_seconds = max(ready_without_leader, ready_without_relay_node)
        report.first_write = report.first_read = "not tried"
    finally:
        tap.close()
    RESULTS.write_text(json.dumps({"fault_seconds": FAULT_SECONDS, "faults": [report.as_row()]}, indent=2))
    broken = [name for name in report.violations(RECOVERY_LIMIT_SECONDS) if not name.startswith("first_")]
    assert report.acknowledged > 0, report
    assert not broken, report
    consumers = _queues(system, "consumers")
    assert consumers[HISTORY_QUEUE]["consumers"] == 2, "both history workers consume"
    assert consumers[COMMANDS_QUEUE]["consumers"] == 1, "the command consumer consumes"
    for queue in QUORUM_QUEUES:
        wait_until(lambda queue=queue: _caught_up(system, queue), timeout=30, message=f"{queue}'s members to agree")
