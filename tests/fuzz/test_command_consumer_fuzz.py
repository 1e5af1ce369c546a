"""Property-based fuzzing of the command consumer (SPEC §5, §9) on the real RabbitMQ and PostgreSQL.

hypothesis makes batches of messages — random bytes, JSON of every shape in several encodings, commands
as a person types them in the console (and gets them wrong), bodies nested or oversized — with random
headers and properties, publishes each batch, then a valid command. Property, for every batch:

- each message the broker took is either applied once, or dead-lettered once with its reason (never
  for an internal error), and a reply to it, when asked for, is well formed and says the same;
- the valid command after the batch is applied promptly: the queue never stalls;
- the consumer runs on: the same process, the same connection, no ERROR in its log.

The run is bounded by `FUZZ_SECONDS` (60 by default, a third of it spent here). A failing batch is not
shrunk (a step costs a consumer restart), but saved in `.hypothesis/`, so the next run tries it first.
"""

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import psycopg
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.broker import COMMANDS_EXCHANGE, COMMANDS_QUEUE, DEATH_REASON_HEADER
from shared.commands import HEADER_FIELDS
from tests.fuzz.amqp_wire import (
    BATCH_SETTINGS,
    FuzzPublisher,
    Sent,
    any_text,
    encoded,
    hand_typed_mistakes,
    header_tables,
    json_text,
    json_values,
    nested,
    short_strings,
)
from tests.support.asyncapi import check_message
from tests.support.commands import CommandBus, start_command_consumer
from tests.support.infra import Infra
from tests.support.processes import LOGS, ServiceProcess
from tests.support.stack import Stack
from tests.support.watch import log_since, log_size, wait_consuming

pytestmark = pytest.mark.integration

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
BATCHES = max(10, FUZZ_SECONDS * 2)  # a batch takes about 1/6 s here: FUZZ_SECONDS / 3 in all
RUN = uuid.uuid4().hex[:8]

#: Why a command message may be dead-lettered: every refusal but `internal-error`, which is a fault of ours.
REFUSALS = {
    "not-json",
    "unknown-command",
    "invalid-command",
    "validation",
    "not-found",
    "version-mismatch",
    "duplicate-email",
    "idempotency-key-reused",
}
MINE = "<the fuzzer's reply queue>"
DIRECT_REPLY = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAyNzk2NjM4OAAAAAAAAAAB"  # as RabbitMQ names one, to no one
LOG = LOGS / "command-consumer-fuzz.log"


@dataclass(frozen=True)
class Message:
    """A drawn message; `reply_to` may be MINE, filled in when it is published."""

    body: bytes
    properties: dict[str, Any]
    reply_to: str | bytes | None
    to_queue: bool  # published straight to the queue, as from its console page, not through the exchange


class Consumer:
    """The consumer under test, started again (on an emptied queue) if a message killed it, so that every
    example starts with one running; its log is read from where the example began."""

    def __init__(self, infra: Infra) -> None:
        self._stack = Stack(infra)
        self._infra = infra
        self.process: ServiceProcess | None = None
        self._log_from = 0

    def ensure_running(self) -> ServiceProcess:
        if self.process is None or self.process.process is None or self.process.process.poll() is not None:
            self._stack.stop()
            with pika.BlockingConnection(pika.URLParameters(self._infra.amqp_url)) as connection:
                connection.channel().queue_purge(COMMANDS_QUEUE)  # what killed the last one
            log_from = log_size(LOG)
            self.process = start_command_consumer(self._stack.launch, LOG.stem, create_reply_delay_seconds=0)
            wait_consuming(self.process, COMMANDS_QUEUE, log_from)
        self._log_from = log_size(LOG)
        return self.process

    def outcomes(self) -> Counter[str]:
        assert self.process is not None and self.process.health_url is not None
        text = requests.get(self.process.health_url.replace("/healthz", "/metrics"), timeout=5).text
        counts: Counter[str] = Counter()
        for line in text.splitlines():
            if line.startswith("command_consumer_messages_total{"):
                label, value = line.split("} ")
                counts[label.split('outcome="')[1].rstrip('"')] = int(float(value))
        return counts

    def log_since_example(self) -> str:
        return log_since(LOG, self._log_from)

    def stop(self) -> None:
        self._stack.stop()


@pytest.fixture(scope="module")
def consumer(infra: Infra) -> Iterator[Consumer]:
    consumer = Consumer(infra)
    yield consumer
    consumer.stop()


@pytest.fixture(scope="module")
def targets(infra: Infra, consumer: Consumer) -> list[int]:
    """Contacts the fuzzed commands may update and delete, and last the canary, which only the canary touches."""
    consumer.ensure_running()
    bus = CommandBus(infra.amqp_url)
    ids = []
    for n in range(8):
        data = {"first_name": "Fuzz", "last_name": f"Target {n}", "email": f"target{n}.{RUN}@example.com"}
        asked = bus.send({"command": "create", "data": {**data, "phone": "+1 555 0100"}}, reply=True)
        ids.append(bus.reply_to(asked)["contact"]["id"])
    bus.close()
    return ids


def contact_data(wrong_values: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Some or all of a contact's fields, each valid or (when `wrong_values`) possibly anything."""
    valid = {
        "first_name": st.sampled_from(["Ada", "  Grace ", "Zoë", "李", "x" * 100]),
        "last_name": st.sampled_from(["Lovelace", "O'Brien", "de la Cruz"]),
        "email": st.integers(0, 10**6).map(lambda n: f"fuzz.{RUN}.{n}@example.com"),
        "phone": st.sampled_from(["+1 555 0100", "(020) 7946-0958", "12345"]),
    }
    wrong = any_text | json_values | st.sampled_from(["x" * 101, "a\x00b", "", "  ", "ada@", "+1 555 0100 x"])
    fields = {name: strategy | wrong if wrong_values else strategy for name, strategy in valid.items()}
    extra = st.dictionaries(st.sampled_from(["id", "version", "nickname", "Email"]), json_values, max_size=1)
    data = st.fixed_dictionaries({}, optional=fields)
    return data.flatmap(lambda found: extra.map(lambda more: {**found, **more})) if wrong_values else data


def complete_contact() -> st.SearchStrategy[dict[str, Any]]:
    """All four fields, valid, the email new to this run (or, drawn twice, a duplicate)."""
    defaults = {"first_name": "Ada", "last_name": "Lovelace", "phone": "+1 555 0100"}
    emails = st.integers(0, 10**9).map(lambda n: f"fuzz.{RUN}.{n}@example.com")
    return st.tuples(contact_data(False), emails).map(lambda drawn: {**defaults, "email": drawn[1], **drawn[0]})


@st.composite
def command_fields(draw: st.DrawFn, targets: list[int], careful: bool) -> dict[str, Any]:
    """A command as a service or a person writes one: when `careful`, well formed (if perhaps refused: a
    stale version, a duplicate email), else anything in any field."""
    fuzzed = targets[:-1]
    ids: st.SearchStrategy[Any] = (
        st.sampled_from(fuzzed) | st.sampled_from(fuzzed).map(str) | st.sampled_from(fuzzed).map(lambda i: f" {i} ")
    )
    versions: st.SearchStrategy[Any] = st.none() | st.integers(1, 4) | st.integers(1, 4).map(str)
    command_ids: st.SearchStrategy[Any] = st.none() | st.uuids().map(str)
    commands: st.SearchStrategy[Any] = st.sampled_from(
        ["create", "create", "update", "update", "Update", "update ", "delete", " delete\n"]
    )
    if not careful:
        ids |= st.sampled_from([0, -1, 2**63, 2**64, 1.5, "4e2", None, [], {}, "", True]) | json_values
        versions |= st.sampled_from([-1, 2**70, 1.0, 2.5, "one", " 2 "]) | json_values
        command_ids |= st.sampled_from(["", " ", "a\x00b", "x" * 201]) | any_text | json_values
        commands |= st.sampled_from(["upsert", "", "create\x00"]) | any_text | json_values
    command = draw(commands)
    fields: dict[str, Any] = {"command": command}
    wants = str(command).strip().lower()
    if wants != "create" or not careful:
        fields["contact_id"] = draw(ids)
    if wants == "create" and careful:
        fields["data"] = draw(complete_contact())
    elif wants != "delete" or not careful:
        fields["data"] = draw(contact_data(not careful) if careful or draw(st.booleans()) else json_values)
    for name, strategy in (("expected_version", versions), ("command_id", command_ids)):
        value = draw(strategy)
        if value is not None:
            fields[name] = value
    return fields


@st.composite
def messages(draw: st.DrawFn, targets: list[int], user: str) -> Message:
    """A message: half of them careful (a command, its properties as a sender means them, envelope fields
    perhaps in headers as the console types them), the others anything at all."""
    careful = draw(st.booleans())
    kind = "command" if careful else draw(st.sampled_from(["command", "json", "bytes", "nested", "oversized"]))
    headers = draw(st.none() if careful else header_tables(HEADER_FIELDS))
    content_encoding = None
    if kind == "bytes":
        body, content_encoding = draw(st.binary(max_size=200)), draw(st.sampled_from([None, "utf-8", "latin-1"]))
    elif kind == "nested":
        body = nested(draw(st.sampled_from([100, 1_000, 100_000])))
    elif kind == "oversized":
        size = draw(st.integers(64 * 1024, 256 * 1024))
        body = json.dumps({"command": "create", "data": {"first_name": "x" * size}}).encode()
    else:
        value: Any = draw(command_fields(targets, careful) if kind == "command" else json_values)
        if careful and draw(st.booleans()):
            moved = draw(st.sets(st.sampled_from(HEADER_FIELDS)))
            headers = {name: str(value.pop(name)) for name in sorted(moved) if name in value}
        text = json_text(value, draw(st.sampled_from([None, 2])), draw(st.booleans()))
        if not careful and kind == "command":
            text = draw(hand_typed_mistakes)(text)
        body, content_encoding = draw(encoded(text, careful))
    rarely = [None] * 18
    properties = {
        "content_type": draw(st.sampled_from([None, "application/json", "text/plain", "application/json; x"])),
        "content_encoding": content_encoding,
        "headers": headers,
        "delivery_mode": draw(st.sampled_from([None] * 9 + [1] * 5 + [2] * 5 + [0])),
        "priority": draw(st.none() | st.integers(0, 255)),
        "correlation_id": draw(st.none() | short_strings),
        "expiration": draw(st.sampled_from([*rarely, "3600000", "soon"])),
        "timestamp": draw(st.none() | st.integers(0, 2**64 - 1)),
        "type": draw(st.none() | short_strings),
        "user_id": draw(st.sampled_from([*rarely, user, "someone-else"])),
        "app_id": draw(st.sampled_from([None, "billing", "", "  "]) if careful else st.none() | short_strings),
        "cluster_id": draw(st.none() | short_strings),
    }
    replies = [MINE] * 6 + [None, "no-such-queue", "amq.rabbitmq.reply-to", DIRECT_REPLY]
    reply_to = draw(st.sampled_from(replies) if careful else st.sampled_from(replies) | short_strings)
    return Message(body, properties, reply_to, draw(st.booleans()))


def on_the_wire(value: str | bytes | None) -> bytes | None:
    """A shortstr as its bytes: pika hands back UTF-8 as str, anything else as bytes."""
    return value.encode() if isinstance(value, str) else value


def publish(publisher: FuzzPublisher, message: Message) -> Sent:
    reply_to = publisher.reply_queue if message.reply_to == MINE else message.reply_to
    tag = f"fuzz-{RUN}-{uuid.uuid4().hex[:12]}"
    properties = pika.BasicProperties(**message.properties, message_id=tag, reply_to=reply_to)
    sent = Sent(tag, message.body, properties, wants_reply=message.reply_to == MINE)
    if message.to_queue:
        publisher.publish("", COMMANDS_QUEUE, sent)
    else:
        publisher.publish(COMMANDS_EXCHANGE, "any routing key", sent)
    return sent


def outbox_has(infra: Infra, contact: dict[str, Any]) -> bool:
    with psycopg.connect(infra.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox"
            " WHERE (payload->>'contact_id')::bigint = %s AND (payload->>'version')::int = %s",
            (contact["id"], contact["version"]),
        ).fetchone()
    return row is not None and row[0] == 1


def check_reply(infra: Infra, sent: Sent, properties: pika.BasicProperties, body: bytes, letters: list[Any]) -> None:
    """A reply is the JSON the AsyncAPI document describes, echoes the correlation id, and agrees with the outcome."""
    assert on_the_wire(properties.correlation_id) == on_the_wire(sent.properties.correlation_id)
    assert properties.content_type == "application/json"
    reply = json.loads(body)
    check_message("CommandReply", reply)
    if reply["ok"]:
        assert not letters, f"applied and dead-lettered: {letters}"
        assert reply["contact"] is None or outbox_has(infra, reply["contact"]), "the change is in the database"
    else:
        assert len(letters) == 1, "refused but not dead-lettered"
        reason = letters[0][0].headers[DEATH_REASON_HEADER]
        assert reason.startswith(reply["error"]["type"].removeprefix("/problems/") + ": ")
        assert 400 <= reply["status"] < 500, reply


def check_batch(
    infra: Infra, consumer: Consumer, publisher: FuzzPublisher, batch: list[Message], canary: int, tally: Counter[str]
) -> None:
    process = consumer.ensure_running()
    pid = process.process.pid if process.process else None
    before = consumer.outcomes()
    publisher.collected.replies.clear()
    sent = [publish(publisher, message) for message in batch]
    valid = Message(
        json.dumps({"command": "update", "contact_id": canary, "data": {"last_name": uuid.uuid4().hex}}).encode(),
        {"correlation_id": "canary"},
        MINE,
        False,
    )
    sent.append(publish(publisher, valid))
    delivered = [message for message in sent if not message.refused_by_broker]
    answered = [message for message in delivered if message.wants_reply]

    replies = publisher.collected.replies
    stalled = not publisher.pump_until(lambda: len(replies) >= len(answered), timeout=15)
    assert not stalled, f"the queue stalled: {len(replies)} of {len(answered)} replies\n{process.log_tail()}"
    outcomes = consumer.outcomes() - before
    assert outcomes["internal-error"] == 0, consumer.log_since_example()
    assert set(outcomes) <= REFUSALS | {"applied"}, outcomes
    assert outcomes.total() == len(delivered), f"each message taken once: {outcomes} for {len(delivered)}"
    tally.update(outcomes)
    tally["applied"] -= 1  # the valid command's
    tally["refused by the broker"] += len(sent) - len(delivered)

    refused = outcomes.total() - outcomes["applied"]
    letters = publisher.collected.dead_letters
    tags = {message.tag for message in delivered}
    publisher.pump_until(lambda: sum(len(letters.get(tag, [])) for tag in tags) >= refused, timeout=10)
    assert sum(len(letters.get(tag, [])) for tag in tags) == refused, "every refused message is dead-lettered"
    for message in delivered:
        for properties, body in letters.get(message.tag, []):
            reason = properties.headers[DEATH_REASON_HEADER]
            assert isinstance(reason, str) and reason.split(": ", 1)[0] in REFUSALS, reason
            assert body == message.body, "the dead letter is the message as it was sent"
    assert len(replies) == len(answered), "one reply to each message that asked for one"
    for message, (properties, body) in zip(answered, replies, strict=True):
        check_reply(infra, message, properties, body, letters.get(message.tag, []))
    assert json.loads(replies[-1][1])["ok"], "the valid command is applied"

    assert process.process is not None and process.process.poll() is None and process.process.pid == pid
    log = consumer.log_since_example()
    assert '"level": "ERROR"' not in log and "Traceback" not in log, log
    assert "consuming " + COMMANDS_QUEUE not in log, f"the consumer reconnected:\n{log}"


def test_every_message_is_applied_once_or_dead_lettered_with_its_reason_and_the_consumer_runs_on(
    infra: Infra, consumer: Consumer, targets: list[int]
) -> None:
    publisher = FuzzPublisher(infra.amqp_url)
    tally: Counter[str] = Counter()

    @settings(
        max_examples=BATCHES,
        **BATCH_SETTINGS,
    )
    @given(st.lists(messages(targets, infra.amqp_user), min_size=1, max_size=12))
    def fuzz(batch: list[Message]) -> None:
        check_batch(infra, consumer, publisher, batch, targets[-1], tally)

    try:
        fuzz()
    finally:
        publisher.close()
    print(f"\ncommand fuzzer, {BATCHES} batches: {dict(tally.most_common())}")
    assert tally["applied"] > 0 and tally.total() - tally["applied"] > BATCHES, "the fuzzer reached both outcomes"
