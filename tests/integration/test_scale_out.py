"""Scale-out as `docker compose up --scale …` runs it, proven with several local processes of one service.

The third part, two relays publishing each event once, is proven by
tests/integration/test_relay.py::test_a_second_relay_waits_for_the_leader_and_no_event_is_published_twice.
"""

import json
import re
from collections.abc import Iterator

import pika
import psycopg
import pytest
import requests

from shared.broker import EVENTS_EXCHANGE, HISTORY_QUEUE
from tests.conftest import Launch
from tests.support.amqp import EventTap
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.notifier import LiveClient, start_notifier
from tests.support.processes import ServiceProcess, wait_until
from tests.support.read_side import start_history_worker

pytestmark = pytest.mark.integration


def write_versions(http: requests.Session, command_api: str, contacts: int, versions: int) -> list[int]:
    """Create `contacts` contacts through the API and change each until it has `versions` versions."""
    ids = []
    for _ in range(contacts):
        created = http.post(f"{command_api}/api/contacts", json=new_contact(), timeout=30)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    for version in range(2, versions + 1):
        for contact_id in ids:
            changed = http.patch(f"{command_api}/api/contacts/{contact_id}", json={"first_name": f"Ada {version}"})
            assert changed.status_code == 200, changed.text
    return ids


def recorded_versions(infra: Infra, ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Each contact's history rows: (version, seq of the event it was recorded from)."""
    with psycopg.connect(infra.database_url) as conn:
        rows = conn.execute(
            "SELECT contact_id, version, seq FROM contact_versions WHERE contact_id = ANY(%s) ORDER BY 1, 2", (ids,)
        ).fetchall()
    found: dict[int, list[tuple[int, int]]] = {}
    for contact_id, version, seq in rows:
        found.setdefault(contact_id, []).append((version, seq))
    return found


def consumed(probes: str, outcome: str = "recorded") -> float:
    """How many events a history worker took off the queue with that outcome, from its /metrics."""
    text = requests.get(f"{probes}/metrics", timeout=5).text
    found = re.search(rf'^history_worker_events_total\{{outcome="{outcome}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def clients() -> Iterator[list[LiveClient]]:
    opened: list[LiveClient] = []
    yield opened
    for client in opened:
        client.close()


def test_two_history_workers_competing_on_the_queue_record_each_version_exactly_once(
    command_api: str, relay: ServiceProcess, launch: Launch, events: EventTap, infra: Infra, http: requests.Session
) -> None:
    # Small batches, so the queue's messages are shared between the two rather than taken by one.
    workers = [
        start_history_worker(launch, f"history-worker-{n}", history_batch_size=4, history_batch_wait_ms=5)[1]
        for n in (1, 2)
    ]
    ids = write_versions(http, command_api, contacts=12, versions=4)
    published = events.wait_for(48, lambda body: body["contact_id"] in ids, timeout=30)
    assert len(published) == 48

    # Every event once more, as a relay resends after a dropped connection: the copies race on the two workers.
    connection = pika.BlockingConnection(pika.URLParameters(infra.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for event in published:
        channel.basic_publish(EVENTS_EXCHANGE, event.routing_key, json.dumps(event.body), event.properties, True)
    connection.close()

    # One row per version, recorded from the one event published for it, and every copy taken as already recorded.
    expected: dict[int, list[tuple[int, int]]] = {}
    for event in published:
        expected.setdefault(event.body["contact_id"], []).append((event.body["version"], event.body["seq"]))
    wait_until(lambda: recorded_versions(infra, ids) == expected, timeout=30, message="every version recorded")
    wait_until(lambda: all(consumed(probes) > 0 for probes in workers), message="both workers to have consumed")
    wait_until(lambda: events.waiting(HISTORY_QUEUE) == 0, message="every copy taken off the history queue")
    assert sum(consumed(probes, "dead-lettered") for probes in workers) == 0, "no copy refused as a conflict"
    assert recorded_versions(infra, ids) == expected


def test_three_notifiers_each_deliver_every_event_to_every_one_of_their_clients(
    command_api: str,
    relay: ServiceProcess,
    launch: Launch,
    events: EventTap,
    clients: list[LiveClient],
    http: requests.Session,
) -> None:
    for n in (1, 2, 3):
        base = start_notifier(launch, f"notifier-{n}")[0]
        clients.extend(LiveClient(base) for _ in range(2))
    for client in clients:
        client.hello()

    ids = write_versions(http, command_api, contacts=8, versions=2)
    published = events.wait_for(16, lambda body: body["contact_id"] in ids, timeout=30)
    expected = sorted((event.body["seq"], event.body["event_id"]) for event in published)
    assert len(expected) == 16
    for client in clients:
        frames = client.receive_until(expected[-1][0], timeout=30)
        received = [
            (frame["seq"], frame["event_id"])
            for frame in frames
            if frame["type"].startswith("contact.") and frame["contact_id"] in ids
        ]
        assert received == expected, "every event, once, in seq order"
