"""Property-based fuzzing of the history worker's queue (`history-worker.events`) on the real RabbitMQ and PostgreSQL.

hypothesis publishes batches of garbage on `contacts.events` — random bytes, JSON of every shape, events
with one field wrong, missing or out of range, headers of every AMQP type — then a real event. Property,
for every batch: each message is recorded (its version row exists) or dead-lettered once with its reason;
the real event after it is recorded; the worker runs on: the same process, the same connection, no ERROR
in its log. Bounded by `FUZZ_SECONDS` (about a tenth of it spent here).
"""

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.broker import DEATH_REASON_HEADER, EVENTS_EXCHANGE, HISTORY_QUEUE
from tests.fuzz.amqp_wire import (
    BATCH_SETTINGS,
    FuzzPublisher,
    Sent,
    any_text,
    header_tables,
    json_values,
    nested,
    short_strings,
)
from tests.fuzz.events import history_worker, own_contact_ids, real_event, version_exists
from tests.support.infra import Infra
from tests.support.processes import LOGS, ServiceProcess
from tests.support.watch import unharmed

pytestmark = pytest.mark.integration

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
BATCHES = max(5, FUZZ_SECONDS)  # a batch takes about 1/10 s here: FUZZ_SECONDS / 10 in all
RUN = uuid.uuid4().hex[:8]
LOG = LOGS / "history-worker-fuzz.log"
_ids = own_contact_ids()


@pytest.fixture(scope="module")
def worker(infra: Infra) -> Iterator[ServiceProcess]:
    with history_worker(infra, LOG.stem) as worker:
        yield worker


FIELDS = list(real_event(1))
SNAPSHOT_FIELDS = list(real_event(1)["contact"])
odd_values = json_values | st.sampled_from(
    [0, -1, 2**63, 2**31, "a\x00b", "", "not a uuid", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59-23:59", None]
)


@st.composite
def wrong_events(draw: st.DrawFn) -> dict[str, Any]:
    """A real event with a field or two wrong, missing, or added, in the event or in its snapshot."""
    event = real_event(next(_ids), draw(st.integers(1, 3)), draw(st.sampled_from(["created", "updated", "deleted"])))
    for _ in range(draw(st.integers(1, 2))):
        snapshot = event.get("contact")
        where, names = event, FIELDS
        if isinstance(snapshot, dict) and draw(st.booleans()):
            where, names = snapshot, SNAPSHOT_FIELDS
        name = draw(st.sampled_from(names) | any_text)
        if draw(st.booleans()):
            where.pop(name, None)
        else:
            where[name] = draw(odd_values)
    return event


@st.composite
def garbage(draw: st.DrawFn) -> tuple[str, bytes, dict[str, Any]]:
    """A message on `contacts.events`: its routing key, body and properties."""
    kind = draw(st.sampled_from(["event", "event", "json", "bytes", "nested"]))
    if kind == "event":
        body = json.dumps(draw(wrong_events()), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    elif kind == "nested":
        body = nested(draw(st.sampled_from([100, 1_000, 100_000])))
    else:
        body = draw(st.binary(max_size=200))
    routing_key = draw(st.sampled_from(["contact.created", "contact.updated", "contact.deleted", "contact.x.y"]))
    properties = {
        "content_type": draw(st.sampled_from([None, "application/json", "text/plain"])),
        "headers": draw(header_tables(("correlation_id",))),
        "correlation_id": draw(st.none() | short_strings),
        "type": draw(st.none() | short_strings),
        "app_id": draw(st.none() | short_strings),
        "delivery_mode": draw(st.sampled_from([None, 1, 2])),
    }
    return routing_key, body, properties


def check_batch(
    infra: Infra, worker: ServiceProcess, publisher: FuzzPublisher, batch: list[Any], tally: Counter[str]
) -> None:
    with unharmed(worker, HISTORY_QUEUE):
        _check_batch(infra, worker, publisher, batch, tally)


def _check_batch(
    infra: Infra, worker: ServiceProcess, publisher: FuzzPublisher, batch: list[Any], tally: Counter[str]
) -> None:
    sent = []
    for routing_key, body, properties in batch:
        tag = f"fuzz-{RUN}-{uuid.uuid4().hex[:12]}"
        message = Sent(tag, body, pika.BasicProperties(**properties, message_id=tag), wants_reply=False)
        publisher.publish(EVENTS_EXCHANGE, routing_key, message)
        sent.append(message)
    real = json.dumps(real_event(next(_ids))).encode()
    publisher.publish(EVENTS_EXCHANGE, "contact.created", Sent("real", real, pika.BasicProperties(), False))

    letters = publisher.collected.dead_letters
    recorded_in_time = publisher.pump_until(lambda: version_exists(infra, real), timeout=15)
    assert recorded_in_time, f"the real event is not recorded: the queue stalled\n{worker.log_tail()}"
    for message in sent:

        def settled(message: Sent = message) -> bool:
            return message.tag in letters or version_exists(infra, message.body)

        assert publisher.pump_until(settled, timeout=10), f"neither recorded nor dead-lettered: {message.body[:300]!r}"
        recorded, dead = version_exists(infra, message.body), letters.get(message.tag, [])
        assert recorded != bool(dead), f"recorded and dead-lettered: {message.body[:300]!r}"
        assert len(dead) <= 1, "dead-lettered twice"
        if dead:
            reason = dead[0][0].headers[DEATH_REASON_HEADER]
            assert isinstance(reason, str) and reason, dead[0][0].headers
            assert dead[0][1] == message.body
        tally["recorded" if recorded else "dead-lettered"] += 1


def test_garbage_on_the_events_exchange_is_dead_lettered_with_its_reason_and_real_events_are_still_recorded(
    infra: Infra, worker: ServiceProcess
) -> None:
    publisher = FuzzPublisher(infra.amqp_url)
    tally: Counter[str] = Counter()

    @settings(
        max_examples=BATCHES,
        **BATCH_SETTINGS,
    )
    @given(st.lists(garbage(), min_size=1, max_size=8))
    def fuzz(batch: list[Any]) -> None:
        check_batch(infra, worker, publisher, batch, tally)

    try:
        fuzz()
    finally:
        publisher.close()
    print(f"\nhistory fuzzer, {BATCHES} batches: {dict(tally)}")
    assert tally["dead-lettered"] > BATCHES, "the fuzzer reached the dead-letter queue"
