"""Reading command messages as other services and people send them, and mapping them onto the handlers."""

from datetime import UTC, datetime

import pika
import pytest
from command_api.consumer import CommandConsumer, death_reason, read_message, to_command
from command_api.errors import InvalidCommand, NotJson, UnknownCommand, VersionMismatch
from command_api.handlers import Command, ContactHandlers, CreateContact, DeleteContact, Origin, PatchContact

from shared.commands import CreateCommand, DeleteCommand, UpdateCommand
from shared.logs import correlation_id
from shared.models import Contact
from shared.settings import Settings

ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}


class RecordingHandlers(ContactHandlers):
    """The handlers' port without a database: records what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[Command, Origin]] = []

    def handle(self, command: Command, origin: Origin) -> Contact | None:
        self.calls.append((command, origin))
        now = datetime.now(UTC)
        return Contact(id=42, version=1, created_at=now, updated_at=now, **ADA)


def test_a_message_typed_in_the_console_is_read_with_whitespace_and_string_headers() -> None:
    body = b'\n  {"command": "Update ",\n   "contact_id": "42",\n   "data": {"phone": "+1 555 0100"}}\n'
    message = read_message(body, {"expected_version": "3", "command_id": "fix-42"})
    assert message == UpdateCommand(
        command="update", contact_id=42, data={"phone": "+1 555 0100"}, expected_version=3, command_id="fix-42"
    )


def test_header_values_pika_hands_over_as_bytes_or_numbers_are_read_too() -> None:
    message = read_message(b'{"command": "delete"}', {"contact_id": b"42", "expected_version": 3})
    assert message == DeleteCommand(command="delete", contact_id=42, expected_version=3)


def test_a_header_that_disagrees_with_the_body_is_refused() -> None:
    with pytest.raises(InvalidCommand) as refused:
        read_message(b'{"command": "delete", "contact_id": 42, "expected_version": 3}', {"expected_version": "4"})
    assert refused.value.errors == [{"field": "expected_version", "message": "the body and the header disagree"}]


def test_a_header_that_repeats_the_body_is_fine() -> None:
    message = read_message(b'{"command": "delete", "contact_id": 42}', {"contact_id": "42"})
    assert message == DeleteCommand(command="delete", contact_id=42)


@pytest.mark.parametrize("body", [b"", b"update 42", b'{"command": "delete",', b"\xff\xfe\x00garbage"])
def test_a_body_that_is_not_json_is_refused_as_not_json(body: bytes) -> None:
    with pytest.raises(NotJson):
        read_message(body, None)


@pytest.mark.parametrize(
    "body", [b'{"command": "upsert"}', b'{"contact_id": 42}', b'{"command": 7}', b'{"command": ""}']
)
def test_a_missing_or_unknown_command_is_refused_as_unknown(body: bytes) -> None:
    with pytest.raises(UnknownCommand):
        read_message(body, {})


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b"[1, 2]", "body", "expected an object"),
        (b'{"command": "update", "data": {}}', "contact_id", "field required"),
        (b'{"command": "update", "contact_id": 42}', "data", "field required"),
        (
            b'{"command": "update", "contact_id": "forty-two", "data": {}}',
            "contact_id",
            "Input should be a valid integer",
        ),
        (b'{"command": "create", "contact_id": 42, "data": {}}', "contact_id", "unknown field"),
        (b'{"command": "delete", "contact_id": 42, "data": {}}', "data", "unknown field"),
        (b'{"command": "update", "contact_id": 42, "data": "phone"}', "data", "Input should be a valid dictionary"),
    ],
)
def test_a_command_of_the_wrong_shape_names_the_field(body: bytes, field: str, problem: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        read_message(body, None)
    assert refused.value.errors is not None
    assert [error["field"] for error in refused.value.errors] == [field]
    assert refused.value.errors[0]["message"].startswith(problem)


def test_update_is_a_merge_patch_and_each_command_maps_onto_the_handlers_command() -> None:
    assert to_command(CreateCommand(command="create", data=ADA)) == CreateContact(ADA)
    update = UpdateCommand(command="update", contact_id=42, data={"phone": None}, expected_version=2)
    assert to_command(update) == PatchContact(42, {"phone": None}, 2)
    assert to_command(DeleteCommand(command="delete", contact_id=42)) == DeleteContact(42, None)


def test_the_death_reason_names_the_slug_the_detail_and_each_field() -> None:
    refused = InvalidCommand("1 field(s) are invalid", [{"field": "contact_id", "message": "field required"}])
    assert death_reason(refused) == "invalid-command: 1 field(s) are invalid (contact_id: field required)"
    assert death_reason(VersionMismatch(3, 4)) == "version-mismatch: expected version 3, the contact is at version 4"


@pytest.mark.parametrize(("app_id", "source"), [("billing", "billing"), (None, "console"), ("  ", "console")])
def test_the_source_is_the_senders_app_id_or_console(app_id: str | None, source: str) -> None:
    handlers = RecordingHandlers()
    consumer = CommandConsumer(handlers, Settings())
    correlation_id.set("trace-7")
    body = b'{"command": "update", "contact_id": 42, "data": {"phone": "+1 555 0100"}, "command_id": 17}'
    message, contact = consumer.apply(body, pika.BasicProperties(app_id=app_id))
    assert isinstance(message, UpdateCommand) and contact is not None
    [(_command, origin)] = handlers.calls
    assert origin == Origin(source, "trace-7", "command:17")


@pytest.mark.parametrize(
    ("user_id", "actor"), [("billing-svc", {"id": None, "name": "billing-svc"}), (None, None), ("", None)]
)
def test_the_actor_is_the_messages_user_id_or_null(user_id: str | None, actor: dict[str, object] | None) -> None:
    handlers = RecordingHandlers()
    CommandConsumer(handlers, Settings()).apply(
        b'{"command": "delete", "contact_id": 42}', pika.BasicProperties(user_id=user_id)
    )
    [(_command, origin)] = handlers.calls
    assert origin.actor == actor


@pytest.mark.parametrize("user_id", [b"\xff\xfe", "a\x00b"])
def test_a_user_id_that_cannot_be_a_name_is_refused(user_id: str | bytes) -> None:
    consumer = CommandConsumer(RecordingHandlers(), Settings())
    with pytest.raises(InvalidCommand, match="user_id"):
        consumer.apply(b'{"command": "delete", "contact_id": 42}', pika.BasicProperties(user_id=user_id))


def test_a_command_without_command_id_has_no_idempotency_key() -> None:
    handlers = RecordingHandlers()
    CommandConsumer(handlers, Settings()).apply(b'{"command": "delete", "contact_id": 42}', pika.BasicProperties())
    [(_command, origin)] = handlers.calls
    assert origin.idempotency_key is None
