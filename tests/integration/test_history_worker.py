"""The history worker on real RabbitMQ and PostgreSQL: one version row per event, whatever the delivery."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
import pytest
import requests

from shared.broker import DEAD_LETTER_QUEUE, DEATH_REASON_HEADER, EVENTS_EXCHANGE
from tests.conftest import Launch
from tests.support.amqp import EventTap
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, wait_until
from tests.support.read_side import start_history_worker
from tests.support.tcp_proxy import proxied

pytestmark = pytest.mark.integration

_next_id = iter(range(10**12 + uuid.uuid4().int % 10**9 * 1000, 2**62))


def event(contact_id: int, version: int, seq: int, op: str = "updated") -> dict[str, Any]:
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    contact = None
    if op != "deleted":
        contact = {
            "id": contact_id,
            "first_name": "Ada",
            "last_name": f"Lovelace v{version}",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0958",
            "version": version,
            "created_at": at,
            "updated_at": at,
        }
    return {
        "type": f"contact.{op}",
        "seq": seq,
        "event_id": str(uuid.uuid4()),
        "contact_id": contact_id,
        "version": version,
        "contact": contact,
        "changed_fields": ["last_name"] if op == "updated" else [],
        "source": "test",
        "at": at,
    }


class Publisher:
    """Publishes raw bodies to `contacts.events`, as the relay would (or a misbehaving service)."""

    def __init__(self, amqp_url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, body: dict[str, Any] | bytes, routing_key: str = "contact.updated") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, headers={})
        self.channel.basic_publish(EVENTS_EXCHANGE, routing_key, raw, properties, mandatory=True)


@pytest.fixture
def publisher(infra: Infra) -> Iterator[Publisher]:
    publisher = Publisher(infra.amqp_url)
    yield publisher
    publisher.connection.close()


@pytest.fixture(scope="module")
def worker(launch_for_module: Launch) -> str:
    return start_history_worker(launch_for_module, history_batch_wait_ms=50)[1]


def versions(infra: Infra, contact_id: int) -> list[tuple[int, str, int]]:
    with psycopg.connect(infra.database_url) as conn:
        rows = conn.execute(
            "SELECT version, op, seq FROM contact_versions WHERE contact_id = %s ORDER BY version", (contact_id,)
        ).fetchall()
    return [(version, op, seq) for version, op, seq in rows]


def dead_letters(infra: Infra) -> list[tuple[dict[str, Any], bytes]]:
    """Every message in the dead-letter queue now, taken off it."""
    connection = pika.BlockingConnection(pika.URLParameters(infra.amqp_url))
    channel = connection.channel()
    taken = []
    while True:
        method, properties, body = channel.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
        if method is None:
            break
        taken.append((properties.headers or {}, body))
    connection.close()
    return taken


def test_duplicated_and_out_of_order_events_leave_exactly_one_row_per_version(
    worker: str, publisher: Publisher, infra: Infra
) -> None:
    contact_id = next(_next_id)
    created, updated, deleted = (
        event(contact_id, 1, 11, "created"),
        event(contact_id, 2, 12),
        event(contact_id, 3, 13, "deleted"),
    )
    for body in (deleted, updated, updated, created, deleted, created, updated):
        publisher.publish(body)

    wait_until(lambda: len(versions(infra, contact_id)) == 3, message="three versions")
    publisher.publish(updated)  # redelivered long after: still nothing new
    marker = next(_next_id)
    publisher.publish(event(marker, 1, 14, "created"))
    wait_until(lambda: versions(infra, marker), message="the marker event")
    assert versions(infra, contact_id) == [(1, "created", 11), (2, "updated", 12), (3, "deleted", 13)]


def test_a_poison_message_is_dead_lettered_with_its_reason_while_good_events_keep_flowing(
    worker: str, publisher: Publisher, infra: Infra
) -> None:
    dead_letters(infra)
    before, after = next(_next_id), next(_next_id)
    bad_version = event(next(_next_id), 1, 21, "created")
    bad_version["version"] = 2  # the snapshot says 1
    publisher.publish(event(before, 1, 20, "created"))
    publisher.publish(b"{not json", "contact.created")
    publisher.publish({"type": "contact.updated", "seq": "x"})
    publisher.publish(bad_version)
    publisher.publish(event(after, 1, 22, "created"))

    wait_until(lambda: versions(infra, before) and versions(infra, after), message="the good events")
    letters: list[tuple[dict[str, Any], bytes]] = []

    def three_letters() -> bool:
        letters.extend(dead_letters(infra))
        return len(letters) >= 3

    wait_until(three_letters, message="three dead letters")
    reasons = sorted(headers[DEATH_REASON_HEADER] for headers, _ in letters)
    assert len(letters) == 3
    assert reasons[0].startswith("not a contact event") and reasons[1].startswith("not a contact event")
    assert "version" in reasons[2]
    assert {body for _, body in letters} >= {b"{not json"}
    status = requests.get(f"{worker}/readyz", timeout=5)
    assert status.status_code == 200, "the worker carries on"


def test_metrics_report_lag_queue_depth_and_outcomes(worker: str, publisher: Publisher, infra: Infra) -> None:
    contact_id = next(_next_id)
    publisher.publish(event(contact_id, 1, 30, "created"))
    wait_until(lambda: versions(infra, contact_id), message="the event")
    metrics = requests.get(f"{worker}/metrics", timeout=5).text
    for name in (
        "history_worker_lag_seconds",
        "history_worker_queue_depth",
        'history_worker_events_total{outcome="recorded"}',
        "history_worker_record_lag_seconds_bucket",
    ):
        assert name in metrics


def recorded_by(probes: str) -> float:
    metrics = requests.get(f"{probes}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('history_worker_events_total{outcome="recorded"}')
    )


def test_a_worker_cut_off_from_rabbitmq_reconnects_and_no_version_is_lost_or_doubled(
    launch: Launch, infra: Infra, command_api: str, relay: ServiceProcess, events: EventTap, http: requests.Session
) -> None:
    proxy, amqp_url = proxied(infra.amqp_url, 5672)
    try:
        _, probes = start_history_worker(
            launch,
            "history-worker-proxied",
            amqp_url=amqp_url,
            history_max_backoff_seconds=0.5,
        )
        ids = [http.post(f"{command_api}/api/contacts", json=new_contact(), timeout=30).json()["id"] for _ in range(4)]

        def write_a_version() -> None:
            for contact_id in ids:
                reply = http.patch(
                    f"{command_api}/api/contacts/{contact_id}", json={"first_name": uuid.uuid4().hex[:8]}, timeout=10
                )
                assert reply.status_code == 200, reply.text

        write_a_version()
        proxy.cut()
        wait_until(lambda: requests.get(f"{probes}/readyz", timeout=5).status_code == 503, message="the loss")
        write_a_version()
        before = recorded_by(probes)
        proxy.restore()
        wait_until(lambda: requests.get(f"{probes}/readyz", timeout=5).ok, message="the worker to reconnect")
        for _ in range(3):
            write_a_version()
        expected = [1, 2, 3, 4, 5, 6]
        for contact_id in ids:
            wait_until(lambda cid=contact_id: [v for v, _, _ in versions(infra, cid)] == expected, timeout=20)
        assert recorded_by(probes) > before, "the reconnected worker took its share of the events"
    finally:
        proxy.close()
    # A row per version cannot be doubled (its key is the version), but its event can: one event per version,
    # and the row recorded from that one.
    events.relayed(infra.database_url)
    for contact_id in ids:
        published = [(e.body["version"], e.body["seq"]) for e in events.of_contact(contact_id, 0, timeout=0)]
        assert published == [(version, seq) for version, _, seq in versions(infra, contact_id)], contact_id
