"""What the command fuzzer found, one message each: every one gets its documented answer and costs the
consumer nothing — the same process, the same connection, no ERROR in its log (checked after each test).
"""

import functools
import json
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import psycopg
import pytest

from shared.broker import COMMANDS_QUEUE, DEATH_REASON_HEADER
from tests.fuzz.amqp_wire import FuzzPublisher, RawField, Sent, nested
from tests.support.commands import start_command_consumer
from tests.support.infra import Infra
from tests.support.processes import LOGS, ServiceProcess
from tests.support.watch import consuming, unharmed

pytestmark = pytest.mark.integration

LOG = LOGS / "command-consumer-hostile.log"


@pytest.fixture(scope="module")
def consumer(infra: Infra) -> Iterator[ServiceProcess]:
    start = functools.partial(start_command_consumer, create_reply_delay_seconds=0)
    with consuming(infra, COMMANDS_QUEUE, LOG.stem, start) as consumer:
        yield consumer


@pytest.fixture
def wire(infra: Infra, consumer: ServiceProcess) -> Iterator[FuzzPublisher]:
    """A publisher of raw messages; after the test, the consumer must be the one it was, on its first connection."""
    with unharmed(consumer, COMMANDS_QUEUE):
        publisher = FuzzPublisher(infra.amqp_url)
        yield publisher
        publisher.close()


def ask(wire: FuzzPublisher, body: bytes | dict[str, Any], **properties: Any) -> tuple[dict[str, Any], str | None]:
    """Send one message to the queue; its reply, and the reason it was dead-lettered for (None if it was not)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    tag = f"hostile-{uuid.uuid4().hex}"
    properties.setdefault("correlation_id", tag)
    sent = Sent(tag, raw, pika.BasicProperties(message_id=tag, reply_to=wire.reply_queue, **properties), True)
    wire.collected.replies.clear()
    wire.publish("", COMMANDS_QUEUE, sent)
    assert wire.pump_until(lambda: len(wire.collected.replies) == 1, timeout=10), "no reply: the queue stalled"
    reply_properties, reply = wire.collected.replies[0]
    assert reply_properties.correlation_id == properties["correlation_id"]
    if json.loads(reply)["ok"]:
        return json.loads(reply), None
    assert wire.pump_until(lambda: tag in wire.collected.dead_letters, timeout=10), "refused, not dead-lettered"
    [(letter, letter_body)] = wire.collected.dead_letters[tag]
    assert letter_body == raw
    return json.loads(reply), letter.headers[DEATH_REASON_HEADER]


@pytest.fixture
def contact(wire: FuzzPublisher) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:12]
    data = {"first_name": "Ada", "last_name": "Lovelace", "email": f"ada.{tag}@example.com", "phone": "+1 555 0100"}
    reply, _ = ask(wire, {"command": "create", "data": data})
    return dict(reply["contact"])


def stored(infra: Infra, contact_id: int) -> tuple[int, str]:
    with psycopg.connect(infra.database_url) as conn:
        row = conn.execute("SELECT version, last_name FROM contacts WHERE id = %s", (contact_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def rename(contact: dict[str, Any], last_name: str = "Byron") -> dict[str, Any]:
    return {"command": "update", "contact_id": contact["id"], "data": {"last_name": last_name}}


def test_a_correlation_id_that_is_not_utf8_is_echoed_and_the_command_applied(
    wire: FuzzPublisher, contact: dict[str, Any]
) -> None:
    reply, reason = ask(wire, rename(contact), correlation_id=b"\xff\xfe trace")
    assert reply["ok"] and reply["contact"]["last_name"] == "Byron" and reason is None


@pytest.mark.parametrize("app_id", [b"\xffbilling", "billing\x00"])
def test_an_app_id_that_cannot_be_a_source_is_refused_naming_it(
    wire: FuzzPublisher, contact: dict[str, Any], infra: Infra, app_id: str | bytes
) -> None:
    reply, reason = ask(wire, rename(contact), app_id=app_id)
    assert (reply["status"], reply["error"]["errors"][0]["field"]) == (422, "app_id")
    assert reason is not None and reason.startswith("invalid-command: ")
    assert stored(infra, contact["id"]) == (1, "Lovelace")


def test_a_body_nested_too_deep_is_not_json(wire: FuzzPublisher) -> None:
    reply, reason = ask(wire, nested(100_000))
    assert reply["status"] == 400 and reason is not None and reason.startswith("not-json: ")


@pytest.mark.parametrize("command_id", ["a\x00b", "\x00"])
def test_a_command_id_postgresql_cannot_store_is_refused_naming_it(
    wire: FuzzPublisher, contact: dict[str, Any], command_id: str
) -> None:
    reply, reason = ask(wire, {**rename(contact), "command_id": command_id})
    assert (reply["status"], reply["error"]["errors"][0]["field"]) == (422, "command_id")
    assert reason is not None and reason.startswith("invalid-command: ")


def test_a_lone_surrogate_is_refused_naming_its_field(
    wire: FuzzPublisher, contact: dict[str, Any], infra: Infra
) -> None:
    """As on HTTP: 422, the field named (PostgreSQL could store no such text)."""
    body = b'{"command": "update", "contact_id": %d, "data": {"last_name": "\\ud800"}}' % contact["id"]
    reply, reason = ask(wire, body)
    assert (reply["status"], reply["error"]["errors"][0]["field"]) == (422, "last_name")
    assert reason is not None and reason.startswith("validation: ")
    assert stored(infra, contact["id"]) == (1, "Lovelace")


def test_a_header_number_with_a_fraction_is_not_read_as_an_integer(
    wire: FuzzPublisher, contact: dict[str, Any], infra: Infra
) -> None:
    """The console sends a number typed in a header as a double: 1.5 is not version 1."""
    reply, reason = ask(wire, rename(contact), headers={"expected_version": RawField(b"d" + struct.pack(">d", 1.5))})
    assert reply["status"] == 422 and reason is not None and reason.startswith("invalid-command: ")
    assert stored(infra, contact["id"]) == (1, "Lovelace")


def test_a_header_timestamp_beyond_pythons_dates_is_read_on_the_first_delivery(
    wire: FuzzPublisher, contact: dict[str, Any]
) -> None:
    reply, reason = ask(wire, rename(contact), headers={"sent-at": RawField(b"T" + struct.pack(">Q", 2**63))})
    assert reply["ok"] and reason is None


def test_a_refused_message_whose_header_holds_a_number_beyond_64_bits_is_dead_lettered(wire: FuzzPublisher) -> None:
    reply, reason = ask(wire, b"not json", headers={"amount": RawField(b"d" + struct.pack(">d", 1e300))})
    assert reply["status"] == 400 and reason is not None and reason.startswith("not-json: ")


@pytest.mark.parametrize("codec", ["latin-1", "utf-16", "cp1252"])
def test_a_body_is_read_in_the_content_encoding_it_names(
    wire: FuzzPublisher, contact: dict[str, Any], codec: str
) -> None:
    body = json.dumps(rename(contact, "Brontë"), ensure_ascii=False).encode(codec)
    reply, reason = ask(wire, body, content_encoding=codec)
    assert reply["ok"] and reply["contact"]["last_name"] == "Brontë" and reason is None


@pytest.mark.parametrize("content_encoding", ["gzip", "zlib", "no-such-codec"])
def test_a_body_in_an_encoding_that_is_no_charset_is_refused_naming_it(
    wire: FuzzPublisher, contact: dict[str, Any], content_encoding: str
) -> None:
    reply, reason = ask(wire, rename(contact), content_encoding=content_encoding)
    assert reply["status"] == 400 and reason is not None
    assert reason.startswith("not-json: ") and repr(content_encoding) in reason
