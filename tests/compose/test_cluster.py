"""The cluster variant (SPEC §10) in containers: docker-compose.yml with docker-compose.cluster.yml, three RabbitMQ
nodes and a PostgreSQL streaming replica, on the stand-ins (tests/support/containers.py's CLUSTER_FILES).

The tests run in this order against one stack: healthy; one cluster, every quorum queue on all three nodes; a
read of one's own write served by the replica; a node killed while writes go on; `down -v` last.
"""

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from shared.broker import COMMANDS_QUEUE, DEAD_LETTER_QUEUE, HISTORY_QUEUE
from shared.consistency import HEADER
from tests.compose.conftest import contact, found, history, running
from tests.support.containers import CLUSTER_FILES, ComposeStack, run
from tests.support.processes import wait_until

NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
MEMBERS = {f"rabbit@{node}" for node in NODES}


@pytest.fixture(scope="module")
def stack(built: ComposeStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """The cluster, running for the module: conftest's `admin` and `api` sign in to this one."""
    with running(ComposeStack(tmp_path_factory.mktemp("cluster"), CLUSTER_FILES)) as up:
        yield up


def rabbitmqctl(stack: ComposeStack, node: str, *arguments: str) -> Any:
    """What `rabbitmqctl` says on that node's container, as JSON."""
    (container,) = stack.containers(node)
    return json.loads(stack.exec(container, "rabbitmqctl", "--formatter", "json", *arguments))


def quorum_queues(stack: ComposeStack, node: str) -> dict[str, dict[str, Any]]:
    """Every quorum queue, as the node sees it: its leader and members."""
    queues = rabbitmqctl(stack, node, "list_queues", "name", "type", "leader", "members")
    return {queue["name"]: queue for queue in queues if queue["type"] == "quorum"}


def on_every_node(stack: ComposeStack, node: str) -> dict[str, dict[str, Any]] | None:
    """The quorum queues when each has a member on all three nodes, else None."""
    queues = quorum_queues(stack, node)
    return queues if all(set(queue["members"]) == MEMBERS for queue in queues.values()) else None


def psql(stack: ComposeStack, service: str, sql: str) -> str:
    (container,) = stack.containers(service)
    arguments = ["--username", stack.env["POSTGRES_USER"], "--dbname", "contacts", "--tuples-only", "--no-align"]
    return stack.exec(container, "psql", *arguments, "--command", sql).strip()


def test_every_container_of_the_cluster_is_healthy(stack: ComposeStack) -> None:
    services = {"postgres", "postgres-replica", *NODES, "command-api", "relay", "commands", "imports", "query-api"}
    for service in services | {"history-worker", "notifier", "gateway"}:
        (container,) = stack.containers(service)
        assert stack.inspect(container)["State"]["Health"]["Status"] == "healthy", service


def test_the_three_nodes_are_one_cluster_and_every_quorum_queue_has_a_member_on_each(stack: ComposeStack) -> None:
    for node in NODES:
        assert set(rabbitmqctl(stack, node, "cluster_status")["running_nodes"]) == MEMBERS, node
    queues = wait_until(lambda: on_every_node(stack, "rabbitmq"), timeout=60, interval=1, message="3 members each")
    assert {DEAD_LETTER_QUEUE, HISTORY_QUEUE, COMMANDS_QUEUE} <= set(queues), queues


def test_a_read_sending_back_a_write_s_token_is_served_by_the_replica_once_it_has_replayed_the_write(
    stack: ComposeStack, api: requests.Session
) -> None:
    """The replica's replay paused: the write is on the primary only, and the read with its token waits for it."""
    assert psql(stack, "postgres-replica", "SELECT pg_is_in_recovery()") == "t", "a standby"
    assert psql(stack, "postgres", "SELECT pg_is_in_recovery()") == "f"
    psql(stack, "postgres-replica", "SELECT pg_wal_replay_pause()")
    try:
        created = api.post(f"{stack.url}/api/contacts", json=contact(uuid.uuid4().hex[:8]), timeout=60)
        assert created.status_code == 201, created.text
        token, url = created.headers[HEADER], f"{stack.url}/api/contacts/{created.json()['id']}"
        assert api.get(url, timeout=10).status_code == 404, "read from the replica, which has not replayed it"
        behind = api.get(url, headers={HEADER: token}, timeout=30)
        assert behind.status_code == 503 and "Retry-After" in behind.headers, behind.text
    finally:
        psql(stack, "postgres-replica", "SELECT pg_wal_replay_resume()")
    read = api.get(url, headers={HEADER: token}, timeout=30)
    assert read.status_code == 200, read.text
    assert read.json() == created.json()


def test_the_leader_s_node_killed_while_writes_go_on_loses_no_acknowledged_write_nor_its_history(
    stack: ComposeStack, api: requests.Session
) -> None:
    """SIGKILL (`docker kill`) of the node leading history-worker.events; the other two carry on without it."""
    node = quorum_queues(stack, "rabbitmq")[HISTORY_QUEUE]["leader"].removeprefix("rabbit@")
    (container,) = stack.containers(node)
    others = [other for other in NODES if other != node]
    tag, replies, stop = uuid.uuid4().hex[:8], [], threading.Event()

    def write(worker: int) -> None:
        index = 0
        while not stop.is_set():
            replies.append(api.post(f"{stack.url}/api/contacts", json=contact(tag, worker * 1000 + index), timeout=60))
            index += 1

    with ThreadPoolExecutor(4) as pool:
        writers = [pool.submit(write, worker) for worker in range(4)]
        try:
            wait_until(lambda: len(replies) >= 4, timeout=60, interval=0.1, message="writes before the kill")
            run(["docker", "kill", container])
            killed_at = len(replies)
            wait_until(lambda: len(replies) >= killed_at + 20, timeout=120, interval=0.1, message="writes after it")
        finally:
            stop.set()
            for writer in writers:
                writer.result()
    assert [reply.status_code for reply in replies] == [201] * len(replies), [reply.text for reply in replies]
    ids = sorted(reply.json()["id"] for reply in replies)
    assert sorted(item["id"] for item in found(api, stack, tag)) == ids
    for contact_id in ids:  # every event went through the two nodes left: the history is there without the third
        versions = wait_until(lambda cid=contact_id: history(api, stack, cid), timeout=60, interval=0.5)
        assert [(item["version"], item["op"]) for item in versions] == [(1, "created")], contact_id
    assert set(rabbitmqctl(stack, others[0], "cluster_status")["running_nodes"]) == MEMBERS - {f"rabbit@{node}"}

    run(["docker", "start", container])
    stack.wait_healthy()
    stack.exec(container, "rabbitmqctl", "--quiet", "await_startup", timeout=180)  # healthy: it answers a ping
    assert set(rabbitmqctl(stack, node, "cluster_status")["running_nodes"]) == MEMBERS, "it joined again"
    assert wait_until(lambda: on_every_node(stack, others[0]), timeout=60, interval=1, message="3 members each")


def test_down_leaves_nothing_of_the_cluster_behind(stack: ComposeStack) -> None:
    assert all(stack.leftovers().values())
    stack.down()
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
