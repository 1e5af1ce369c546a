"""Why a command was refused, as RFC 9457 problems that HTTP replies and AMQP replies share."""

from typing import Any, Self

from pydantic import ValidationError

from shared.problems import Problem


class CommandRefused(Problem):
    """A command we will not apply; HTTP replies and AMQP replies carry its problem."""

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> Self:
        errors = [
            {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": _message(item)}
            for item in error.errors(include_url=False)
        ]
        return cls(f"{len(errors)} field(s) are invalid", errors)


class InvalidContact(CommandRefused):
    status = 422
    title = "Validation failed"
    slug = "validation"


def _message(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] == "missing":
        return "field required"
    return str(item["msg"]).removeprefix("Value error, ")


class DuplicateEmail(CommandRefused):
    status = 409
    title = "Email already in use"
    slug = "duplicate-email"

    def __init__(self) -> None:
        super().__init__(
            "another contact already has this email (emails are compared case-insensitively)",
            [{"field": "email", "message": "already in use"}],
        )


class ContactNotFound(CommandRefused):
    status = 404
    title = "Not found"
    slug = "not-found"

    def __init__(self, contact_id: int) -> None:
        super().__init__(f"contact {contact_id} does not exist")


class VersionMismatch(CommandRefused):
    status = 412
    title = "Version mismatch"
    slug = "version-mismatch"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, the contact is at version {actual}")


class IdempotencyKeyReused(CommandRefused):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__("this idempotency key was already used with a different request")


# Refusals of a command message from RabbitMQ; each slug is also the reason its dead letter names.


class NotJson(CommandRefused):
    status = 400
    title = "Not JSON"
    slug = "not-json"


class UnknownCommand(CommandRefused):
    status = 400
    title = "Unknown command"
    slug = "unknown-command"


class InvalidCommand(CommandRefused):
    status = 422
    title = "Invalid command"
    slug = "invalid-command"


class CommandFailed(CommandRefused):
    """A fault of ours, not of the message: logged, and dead-lettered so the queue moves on."""

    status = 500
    title = "Internal error"
    slug = "internal-error"


# Refusals of the account endpoints (SPEC §8).


class InvalidUser(CommandRefused):
    status = 422
    title = "Validation failed"
    slug = "validation"


class DuplicateUsername(CommandRefused):
    status = 409
    title = "Username already in use"
    slug = "duplicate-username"

    def __init__(self) -> None:
        super().__init__(
            "another user already has this username (usernames are compared case-insensitively)",
            [{"field": "username", "message": "already in use"}],
        )


class LastAdmin(CommandRefused):
    status = 409
    title = "The last admin"
    slug = "last-admin"

    def __init__(self) -> None:
        super().__init__("no other admin is enabled: make another user an admin first, or nobody could manage users")


class UserNotFound(CommandRefused):
    status = 404
    title = "Not found"
    slug = "not-found"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} does not exist")


# Refusals of the import endpoints (SPEC §11).


class UnreadableImport(CommandRefused):
    """A file that is not one we read at all: not UTF-8, no header naming a contact field, no vCard."""

    status = 422
    title = "Unreadable file"
    slug = "unreadable-file"


class ImportNotFound(CommandRefused):
    status = 404
    title = "Not found"
    slug = "not-found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"import {job_id} does not exist")
