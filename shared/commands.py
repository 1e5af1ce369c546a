"""The command messages other services and operators send to `contacts.commands` (SPEC §5).

`{"command": "update", "contact_id": 42, "data": {"phone": "+1 555 0100"}, "expected_version": 3}`:
`create` takes `data` (all four fields), `update` a JSON merge patch of some fields, `delete` nothing.
An optional `command_id` makes a resent command idempotent. Numbers may arrive as strings, as they do
when a person types the message in the RabbitMQ console.
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

#: Envelope fields a sender may put in AMQP headers instead of the body (the console types them as strings).
HEADER_FIELDS = ("command", "contact_id", "expected_version", "command_id")


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a NUL character (\\u0000) cannot be stored")
    return value


CommandId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_storable)
]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    command_id: CommandId | None = None


class CreateCommand(_Command):
    command: Literal["create"]
    data: dict[str, Any]


class UpdateCommand(_Command):
    command: Literal["update"]
    contact_id: int
    data: dict[str, Any]
    expected_version: int | None = None


class DeleteCommand(_Command):
    command: Literal["delete"]
    contact_id: int
    expected_version: int | None = None


CommandMessage = CreateCommand | UpdateCommand | DeleteCommand

COMMAND_MODELS: dict[str, type[CommandMessage]] = {
    "create": CreateCommand,
    "update": UpdateCommand,
    "delete": DeleteCommand,
}
