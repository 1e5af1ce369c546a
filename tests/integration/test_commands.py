"""Commands over RabbitMQ, as another service and as a person in the console send them, on the real stack."""

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.broker import COMMANDS_EXCHANGE, COMMANDS_QUEUE, DEAD_LETTER_QUEUE, DEATH_REASON_HEADER
from tests.support.amqp import EventTap
from tests.support.asyncapi import check_message
from tests.support.commands import CommandBus, Console, start_command_consumer
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import TIMEOUT_FACTOR, ServiceProcess, wait_until
from tests.support.stack import Launch

pytestmark = pytest.mark.integration

DELAY = 2.0 * TIMEOUT_FACTOR  # the create reply deferral of this module's consumer


@pytest.fixture(scope="module")
def consumer(launch_for_module: Launch) -> ServiceProcess:
    return start_command_consumer(launch_for_module, create_reply_delay_seconds=DELAY)


@pytest.fixture
def bus(infra: Infra, consumer: ServiceProcess) -> Iterator[CommandBus]:
    bus = CommandBus(infra.amqp_url, app_id="billing")
    yield bus
    bus.close()


@pytest.fixture
def console(infra: Infra, consumer: ServiceProcess) -> Console:
    return Console.of(infra)


def created(bus: CommandBus, infra: Infra) -> dict[str, Any]:
    """A contact created through a command (not waiting out the deferred reply): its id, email and phone."""
    data = new_contact()
    bus.send({"command": "create", "data": data})

    def row() -> dict[str, Any] | None:
        with psycopg.connect(infra.database_url) as conn:
            found = conn.execute("SELECT id FROM contacts WHERE email = %s", (data["email"],)).fetchone()
        return None if found is None else {"id": found[0], "email": data["email"], "phone": data["phone"]}

    return dict(wait_until(row, message="the created contact"))


def contact_row(infra: Infra, contact_id: int) -> dict[str, Any] | None:
    with psycopg.connect(infra.database_url) as conn:
        row = conn.execute(
            "SELECT version, phone, email, deleted_at IS NOT NULL AS deleted FROM contacts WHERE id = %s", (contact_id,)
        ).fetchone()
    return None if row is None else dict(zip(("version", "phone", "email", "deleted"), row, strict=True))


def test_a_command_from_another_service_is_applied_as_its_source_and_answered(
    bus: CommandBus, relay: ServiceProcess, events: EventTap
) -> None:
    data = new_contact()
    creation = bus.reply_to(bus.send({"command": "create", "data": data}, reply=True), timeout=DELAY + 10)
    assert creation["ok"] is True and creation["contact"]["email"] == data["email"]
    contact = creation["contact"]
    asked = bus.send(
        {"command": "update", "contact_id": contact["id"], "data": {"phone": "+1 555 0100"}, "expected_version": 1},
        reply=True,
    )
    reply = bus.reply_to(asked)
    assert reply == {
        "ok": True,
        "contact": {**contact, "phone": "+1 555 0100", "version": 2, "updated_at": reply["contact"]["updated_at"]},
    }
    assert bus.reply_properties[asked].content_type == "application/json"

    published = events.of_contact(contact["id"], 2)
    assert [(event.body["type"], event.body["version"], event.body["source"]) for event in published] == [
        ("contact.created", 1, "billing"),
        ("contact.updated", 2, "billing"),
    ]
    assert published[1].body["changed_fields"] == ["phone"]
    assert published[1].properties.headers["correlation_id"] == asked, "the sender's correlation id follows the change"


def test_a_refused_command_is_answered_with_the_problem_and_dead_lettered_with_its_reason(
    bus: CommandBus, infra: Infra
) -> None:
    contact = created(bus, infra)
    stale = {"command": "delete", "contact_id": contact["id"], "expected_version": 7}
    asked = bus.send(stale, reply=True)
    reply = bus.reply_to(asked)
    assert reply["ok"] is False and reply["status"] == 412
    assert reply["error"]["type"] == "/problems/version-mismatch"
    [(properties, _body)] = bus.dead_letters_where(lambda p, _b: p.correlation_id == asked, 1)
    assert (
        properties.headers[DEATH_REASON_HEADER] == "version-mismatch: expected version 7, the contact is at version 1"
    )
    assert properties.headers["x-original-exchange"] == COMMANDS_EXCHANGE
    assert properties.app_id == "billing", "the dead letter keeps the original properties"
    assert contact_row(infra, contact["id"]) == {
        "version": 1,
        "phone": contact["phone"],
        "email": contact["email"],
        "deleted": False,
    }


def test_create_replies_are_deferred_without_holding_up_other_commands(bus: CommandBus, infra: Infra) -> None:
    existing = created(bus, infra)
    body = new_contact()
    started = time.monotonic()
    create = bus.send({"command": "create", "data": body}, reply=True)
    update = bus.send(
        {"command": "update", "contact_id": existing["id"], "data": {"first_name": "Augusta"}}, reply=True
    )

    assert bus.reply_to(update)["contact"]["first_name"] == "Augusta"
    assert create not in bus.replies, "the update was answered first"
    with psycopg.connect(infra.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM contacts WHERE email = %s", (body["email"],)).fetchone() == (1,), (
            "the contact is committed while its creator waits"
        )
    assert bus.reply_times[update] - started < DELAY / 2

    reply = bus.reply_to(create, timeout=DELAY + 10)
    assert reply["ok"] and reply["contact"]["email"] == body["email"]
    assert bus.reply_times[create] - started >= DELAY


def test_a_resent_command_with_a_command_id_is_applied_once(bus: CommandBus, infra: Infra) -> None:
    contact = created(bus, infra)
    command = {
        "command": "update",
        "contact_id": contact["id"],
        "data": {"phone": "+1 555 0101"},
        "command_id": uuid.uuid4().hex,
    }
    first, second = bus.reply_to(bus.send(command, reply=True)), bus.reply_to(bus.send(command, reply=True))
    assert first == second and first["contact"]["version"] == 2
    assert contact_row(infra, contact["id"]) == {
        "version": 2,
        "phone": "+1 555 0101",
        "email": contact["email"],
        "deleted": False,
    }

    reused = bus.reply_to(bus.send({**command, "data": {"phone": "+1 555 0102"}}, reply=True))
    assert (reused["ok"], reused["status"], reused["error"]["type"]) == (False, 422, "/problems/idempotency-key-reused")


def test_a_person_updates_and_deletes_a_contact_by_typing_commands_in_the_console(
    bus: CommandBus, console: Console, infra: Infra, relay: ServiceProcess, events: EventTap
) -> None:
    contact = created(bus, infra)
    console.publish(
        COMMANDS_EXCHANGE,
        f'\n  {{"command": "update",\n   "contact_id": {contact["id"]},\n   "data": {{"phone": "+1 555 0100 77"}}}}\n',
        headers={"expected_version": "1"},
    )
    # From the queue's own page the console publishes through the default exchange.
    console.publish(
        "amq.default", f'{{"command": "delete", "contact_id": "{contact["id"]}"}}', routing_key=COMMANDS_QUEUE
    )

    published = events.of_contact(contact["id"], 3)
    assert [(event.body["type"], event.body["source"]) for event in published] == [
        ("contact.created", "billing"),
        ("contact.updated", "console"),
        ("contact.deleted", "console"),
    ]
    assert published[1].body["contact"]["phone"] == "+1 555 0100 77"
    assert contact_row(infra, contact["id"]) == {
        "version": 3,
        "phone": "+1 555 0100 77",
        "email": contact["email"],
        "deleted": True,
    }


def test_an_operator_reads_why_a_message_was_dead_lettered_and_resends_it_corrected(
    bus: CommandBus, console: Console, infra: Infra
) -> None:
    contact = created(bus, infra)
    typo = f'{{"command": "update", "contact_id": {contact["id"]}, "data": {{"email": "ada.example.com"}}}}'
    console.publish(COMMANDS_EXCHANGE, typo)

    def typo_in_dead_letters() -> dict[str, Any] | None:
        waiting = bus.waiting(DEAD_LETTER_QUEUE)
        letters = console.get_messages(DEAD_LETTER_QUEUE, count=waiting) if waiting else []
        return next((letter for letter in letters if letter["payload"] == typo), None)

    letter = wait_until(typo_in_dead_letters, message="the typo in contacts.dead-letter")
    reason = letter["properties"]["headers"][DEATH_REASON_HEADER]
    assert reason.startswith("validation: 1 field(s) are invalid (email: ")

    console.publish(COMMANDS_EXCHANGE, typo.replace("ada.example.com", f"ada.{uuid.uuid4().hex[:8]}@example.com"))
    wait_until(lambda: (contact_row(infra, contact["id"]) or {}).get("version") == 2, message="the corrected update")
    assert bus.waiting(COMMANDS_QUEUE) == 0


def test_real_commands_events_replies_and_dead_letters_fit_the_asyncapi_document(
    bus: CommandBus, relay: ServiceProcess, events: EventTap
) -> None:
    create = {"command": "create", "data": new_contact(), "command_id": uuid.uuid4().hex}
    check_message("Command", create)
    contact = bus.reply_to(bus.send(create, reply=True), timeout=DELAY + 10)["contact"]
    update = {"command": "update", "contact_id": contact["id"], "data": {"phone": "+1 555 0199"}, "expected_version": 1}
    delete = {"command": "delete", "contact_id": contact["id"]}
    stale = {"command": "update", "contact_id": contact["id"], "data": {}, "expected_version": 1}
    replies = []
    for command in (update, delete, stale):
        check_message("Command", command)
        replies.append(bus.reply_to(bus.send(command, reply=True)))
    for reply in replies:
        check_message("CommandReply", reply)

    published = events.of_contact(contact["id"], 3)
    names = {
        "contact.created": "ContactCreated",
        "contact.updated": "ContactUpdated",
        "contact.deleted": "ContactDeleted",
    }
    assert [event.routing_key for event in published] == list(names)
    for event in published:
        check_message(names[event.routing_key], event.body, event.properties.headers)

    junk = bus.send(b"\x00 not json", reply=True)
    check_message("CommandReply", bus.reply_to(junk))
    [(properties, _body)] = bus.dead_letters_where(lambda p, _b: p.correlation_id == junk, 1)
    check_message("DeadLetter", None, properties.headers)
