"""What the history fuzzer found, one message each: every one is recorded or dead-lettered with its reason,
and costs the worker nothing — the same process, the same connection, no ERROR in its log (checked after each).
"""

import json
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from shared.broker import DEATH_REASON_HEADER, EVENTS_EXCHANGE, HISTORY_QUEUE
from tests.fuzz.amqp_wire import FuzzPublisher, RawField, Sent
from tests.fuzz.events import history_worker, own_contact_ids, real_event, version_exists
from tests.support.infra import Infra
from tests.support.processes import LOGS, ServiceProcess, wait_until
from tests.support.watch import unharmed

pytestmark = pytest.mark.integration

LOG = LOGS / "history-worker-hostile.log"
_ids = own_contact_ids()


@pytest.fixture(scope="module")
def worker(infra: Infra) -> Iterator[ServiceProcess]:
    with history_worker(infra, LOG.stem) as worker:
        yield worker


@pytest.fixture
def wire(infra: Infra, worker: ServiceProcess) -> Iterator[FuzzPublisher]:
    """A publisher of raw events; after the test, the worker must be the one it was, on its first connection."""
    with unharmed(worker, HISTORY_QUEUE):
        publisher = FuzzPublisher(infra.amqp_url)
        yield publisher
        publisher.close()


def publish(wire: FuzzPublisher, event: dict[str, Any], **properties: Any) -> Sent:
    tag = f"hostile-{uuid.uuid4().hex}"
    sent = Sent(tag, json.dumps(event).encode(), pika.BasicProperties(message_id=tag, **properties), False)
    wire.publish(EVENTS_EXCHANGE, event["type"] if isinstance(event.get("type"), str) else "contact.updated", sent)
    return sent


def reason(wire: FuzzPublisher, sent: Sent) -> str:
    assert wire.pump_until(lambda: sent.tag in wire.collected.dead_letters, timeout=10), "not dead-lettered"
    [(properties, body)] = wire.collected.dead_letters[sent.tag]
    assert body == sent.body
    return str(properties.headers[DEATH_REASON_HEADER])


def test_an_event_postgresql_refuses_is_dead_lettered_and_its_batch_recorded(wire: FuzzPublisher, infra: Infra) -> None:
    before, after = real_event(next(_ids)), real_event(next(_ids))
    refused = publish(wire, {**real_event(next(_ids)), "source": "a\x00b"})
    publish(wire, before)
    publish(wire, after)
    assert reason(wire, refused).startswith("PostgreSQL refused the version: ")
    assert not version_exists(infra, refused.body)
    wait_until(lambda: version_exists(infra, json.dumps(after).encode()), message="the events around it recorded")
    assert version_exists(infra, json.dumps(before).encode())


def test_a_header_timestamp_beyond_pythons_dates_is_read_on_the_first_delivery(
    wire: FuzzPublisher, infra: Infra
) -> None:
    event = real_event(next(_ids))
    publish(wire, event, headers={"sent-at": RawField(b"T" + struct.pack(">Q", 2**63))})
    wait_until(lambda: version_exists(infra, json.dumps(event).encode()), message="the event recorded")


def test_a_poison_event_whose_header_holds_a_number_beyond_64_bits_is_dead_lettered(wire: FuzzPublisher) -> None:
    sent = publish(wire, {"type": "contact.updated"}, headers={"amount": RawField(b"d" + struct.pack(">d", 1e300))})
    assert reason(wire, sent).startswith("not a contact event: ")
