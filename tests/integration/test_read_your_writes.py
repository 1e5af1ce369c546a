"""Reading one's own writes from a streaming replica (SPEC §10), with a real hot standby of a private server.

command-api writes to the primary; one query-api reads from the replica, another from the primary.
Replay on the replica is paused (pg_wal_replay_pause) to hold it behind a write for as long as a test needs.
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from shared.consistency import HEADER
from shared.migrate import create_database_if_absent, upgrade
from tests.support.data import new_contact
from tests.support.identity import create_user, signed_in, token_for
from tests.support.infra import Infra
from tests.support.processes import wait_until
from tests.support.read_side import start_query_api
from tests.support.servers import PrivateReplica, available, private_servers
from tests.support.stack import Stack, start_command_api

TIMEOUT_SECONDS = 1.5

pytestmark = pytest.mark.skipif(available() is not None, reason=f"private servers cannot run here: {available()}")


@dataclass
class Topology:
    replica: PrivateReplica
    command_api: str
    on_replica: str  # query-api reading from the replica
    on_primary: str  # query-api reading from the primary
    http: requests.Session


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    with private_servers(rabbit_nodes=0, replica=True) as servers:
        standby = servers.replica
        assert standby is not None
        primary = servers.postgres.url.rsplit("/", 1)[0] + "/contacts"
        replica = standby.url.rsplit("/", 1)[0] + "/contacts"
        create_database_if_absent(primary)
        upgrade(primary)
        token = token_for(create_user(primary, "editor"))
        stack = Stack(Infra(primary, "amqp://127.0.0.1:1/%2F", "", "/", "guest", "guest"))  # no broker on this path
        try:
            command_api = start_command_api(stack.launch, create_reply_delay_seconds=0, command_api_workers=1)
            wait_until(lambda: standby.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'contacts_reader'"))
            on_replica = start_query_api(
                stack.launch,
                "query-api-replica",
                query_database_url=replica,
                query_identity_database_url=primary,
                read_after_write_timeout_seconds=TIMEOUT_SECONDS,
            )
            on_primary = start_query_api(stack.launch, "query-api-primary", query_database_url=primary)
            with signed_in(requests.Session(), token) as http:
                yield Topology(standby, command_api, on_replica, on_primary, http)
        finally:
            standby.resume_replay()
            stack.stop()


@pytest.fixture
def replica(topology: Topology) -> Iterator[PrivateReplica]:
    yield topology.replica
    topology.replica.resume_replay()


def _create(topology: Topology) -> tuple[int, str]:
    reply = topology.http.post(f"{topology.command_api}/api/contacts", json=new_contact(), timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"], reply.headers[HEADER]


def _rename(topology: Topology, contact_id: int, last_name: str) -> str:
    reply = topology.http.patch(f"{topology.command_api}/api/contacts/{contact_id}", json={"last_name": last_name})
    assert reply.status_code == 200, reply.text
    return reply.headers[HEADER]


def _read(topology: Topology, base: str, contact_id: int, token: str | None) -> requests.Response:
    headers = {HEADER: token} if token is not None else {}
    return topology.http.get(f"{base}/api/contacts/{contact_id}", headers=headers, timeout=10)


def test_every_write_reply_carries_a_token(topology: Topology) -> None:
    contact_id, created = _create(topology)
    renamed = _rename(topology, contact_id, "Renamed")
    deleted = topology.http.delete(f"{topology.command_api}/api/contacts/{contact_id}", timeout=10)
    assert deleted.status_code == 204
    positions = [int(token, 16) for token in (created, renamed, deleted.headers[HEADER])]
    assert positions == sorted(positions) and len(set(positions)) == 3, "each later write stands further on"
    refused = topology.http.patch(f"{topology.command_api}/api/contacts/{contact_id}", json={"last_name": "X"})
    assert refused.status_code == 404 and HEADER not in refused.headers, "a refusal wrote nothing"


def test_a_read_with_the_token_waits_for_the_replica_to_replay_the_write(
    topology: Topology, replica: PrivateReplica
) -> None:
    contact_id, created = _create(topology)
    assert _read(topology, topology.on_replica, contact_id, created).status_code == 200
    replica.pause_replay()
    token = _rename(topology, contact_id, "Behind")
    stale = _read(topology, topology.on_replica, contact_id, None)
    assert stale.json()["last_name"] != "Behind", "without the token the replica answers what it has"
    answers: list[requests.Response] = []
    reader = threading.Thread(target=lambda: answers.append(_read(topology, topology.on_replica, contact_id, token)))
    reader.start()
    time.sleep(TIMEOUT_SECONDS / 3)
    assert not answers, "the read waits while the replica has not replayed the write"
    replica.resume_replay()
    reader.join(10)
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["last_name"] == "Behind"


def test_a_replica_that_stays_behind_is_a_503_with_retry_after(topology: Topology, replica: PrivateReplica) -> None:
    contact_id, _ = _create(topology)
    wait_until(lambda: _read(topology, topology.on_replica, contact_id, None).status_code == 200)
    replica.pause_replay()
    token = _rename(topology, contact_id, "Paused")
    started = time.monotonic()
    reply = _read(topology, topology.on_replica, contact_id, token)
    waited = time.monotonic() - started
    assert reply.status_code == 503, reply.text
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert int(reply.headers["Retry-After"]) >= 1
    assert reply.json()["type"] == "/problems/replica-behind"
    assert waited >= TIMEOUT_SECONDS, "it waited READ_AFTER_WRITE_TIMEOUT_SECONDS first"
    lag = requests.get(f"{topology.on_replica}/metrics", timeout=5).text
    assert _gauge(lag, "query_api_replica_replay_lag_seconds") > 0
    replica.resume_replay()
    assert _read(topology, topology.on_replica, contact_id, token).json()["last_name"] == "Paused"
    wait_until(
        lambda: (
            _gauge(requests.get(f"{topology.on_replica}/metrics", timeout=5).text, "query_api_replica_replay_lag_bytes")
            == 0
        )
    )


def test_on_the_primary_a_token_is_satisfied_at_once(topology: Topology, replica: PrivateReplica) -> None:
    contact_id, _ = _create(topology)
    replica.pause_replay()  # the replica is behind; the primary has every write
    token = _rename(topology, contact_id, "Primary")
    started = time.monotonic()
    reply = _read(topology, topology.on_primary, contact_id, token)
    assert reply.status_code == 200 and reply.json()["last_name"] == "Primary"
    assert time.monotonic() - started < TIMEOUT_SECONDS
    assert (
        _gauge(requests.get(f"{topology.on_primary}/metrics", timeout=5).text, "query_api_replica_replay_lag_bytes")
        == 0
    )


def test_the_largest_token_is_never_reached_by_a_replica_and_always_by_a_primary(topology: Topology) -> None:
    contact_id, _ = _create(topology)
    wait_until(lambda: _read(topology, topology.on_replica, contact_id, None).status_code == 200)
    assert _read(topology, topology.on_primary, contact_id, "F" * 16).status_code == 200
    assert _read(topology, topology.on_replica, contact_id, "F" * 16).status_code == 503


@pytest.mark.parametrize(
    "token",
    ["", "0/0", "16/B374D848", "G", "1" * 17, "0\x00", "０", "-1", "0x1", "+1", "1 2", "A" * 5000],
)
def test_a_token_of_another_shape_is_a_400_problem(topology: Topology, token: str) -> None:
    for base in (topology.on_replica, topology.on_primary):
        try:
            reply = topology.http.get(f"{base}/api/contacts", headers={HEADER: token.encode("utf-8")}, timeout=10)
        except requests.exceptions.InvalidHeader:
            pytest.skip("requests refuses to send this header value")
        assert reply.status_code in (400, 431), (token, reply.status_code, reply.text)
        assert reply.headers["Content-Type"] == "application/problem+json"


def _gauge(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])
