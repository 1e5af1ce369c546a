"""What each write command does: validate, then change the contact and record its event in one transaction.

HTTP requests and RabbitMQ commands both arrive here; nothing in this module knows about either.
"""

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection, errors
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from command_api.errors import (
    CommandRefused,
    ContactNotFound,
    DuplicateEmail,
    IdempotencyKeyReused,
    InvalidContact,
    VersionMismatch,
)
from command_api.store import ContactStore
from shared.models import CONTACT_FIELDS, Contact, ContactData

_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class CreateContact:
    body: Any


@dataclass(frozen=True)
class ReplaceContact:
    contact_id: int
    body: Any
    expected_version: int | None = None


@dataclass(frozen=True)
class PatchContact:
    """A JSON merge patch (RFC 7396) of some of the contact's fields."""

    contact_id: int
    patch: Any
    expected_version: int | None = None


@dataclass(frozen=True)
class DeleteContact:
    contact_id: int
    expected_version: int | None = None


Command = CreateContact | ReplaceContact | PatchContact | DeleteContact
#: What a command of a batch came to: the contact it left (None after a delete), or why it was refused.
Outcome = Contact | None | CommandRefused


@dataclass(frozen=True)
class Origin:
    """Who sent a command: the event's `source`, the trace id, an optional idempotency key, and the event's
    `actor` (`{"id", "name"}` of the person or login that made the change; None when no one is known)."""

    source: str
    correlation_id: str | None = None
    idempotency_key: str | None = None
    actor: dict[str, object] | None = None


class ContactHandlers:
    def __init__(self, pool: ConnectionPool[Connection[dict[str, Any]]]) -> None:
        self._pool = pool

    def handle(self, command: Command, origin: Origin) -> Contact | None:
        """Apply the command; returns the contact as it now is (None after a delete)."""
        try:
            with self._pool.connection() as conn:
                if isinstance(command, CreateContact) and origin.idempotency_key is None:
                    # Its one write statement is atomic by itself; the id it reserved before is lost if that
                    # statement fails, like any sequence value.
                    return apply(ContactStore(conn), command, origin)
                with conn.transaction():
                    return self._handle(ContactStore(conn), command, origin)
        except errors.UniqueViolation as error:
            if error.diag.constraint_name == "contacts_email_key":
                raise DuplicateEmail() from None
            raise

    def handle_batch(
        self,
        commands: Sequence[Command],
        origin: Origin,
        record: Callable[[Connection[dict[str, Any]], list[Outcome]], None],
    ) -> list[Outcome]:
        """Apply the commands in one transaction, each under a savepoint so that a refused one (its problem
        in its place among the outcomes) leaves the others be; `record` runs last in the same transaction
        with the outcomes (an import's progress), so all of it commits or none."""
        with self._pool.connection() as conn, conn.transaction():
            store = ContactStore(conn)
            outcomes: list[Outcome] = []
            for command in commands:
                try:
                    with conn.transaction():
                        outcomes.append(apply(store, command, origin))
                except CommandRefused as refused:
                    outcomes.append(refused)
                except errors.UniqueViolation as error:
                    if error.diag.constraint_name != "contacts_email_key":
                        raise
                    outcomes.append(DuplicateEmail())
            record(conn, outcomes)
        return outcomes

    @staticmethod
    def _handle(store: ContactStore, command: Command, origin: Origin) -> Contact | None:
        key = origin.idempotency_key
        if key is None:
            return apply(store, command, origin)
        earlier = store.claim_idempotency_key(key, fingerprint(command))
        if earlier is not None:
            if earlier["fingerprint"] != fingerprint(command):
                raise IdempotencyKeyReused()
            return None if earlier["result"] is None else Contact.model_validate(earlier["result"])
        contact = apply(store, command, origin)
        store.record_idempotent_result(key, contact)
        return contact


def fingerprint(command: Command) -> str:
    canonical = json.dumps([type(command).__name__, asdict(command)], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def apply(store: ContactStore, command: Command, origin: Origin) -> Contact | None:
    """Run one command against the store, inside the transaction the caller opened if it needs one."""
    match command:
        case CreateContact(body):
            data = _validated(body)
            contact_id, now = store.reserve_id()
            contact = Contact(id=contact_id, version=1, created_at=now, updated_at=now, **data.model_dump())
            event = _event("contact.created", contact, list(CONTACT_FIELDS), origin)
            store.insert(contact, event, origin.correlation_id)
            return contact
        case ReplaceContact(contact_id, body, expected_version):
            current, now = _locked(store, contact_id, expected_version)
            return _update(store, current, now, _validated(body, current.email), origin)
        case PatchContact(contact_id, patch, expected_version):
            if not isinstance(patch, dict):
                raise InvalidContact(
                    "a merge patch is a JSON object", [{"field": "body", "message": "expected an object"}]
                )
            current, now = _locked(store, contact_id, expected_version)
            merged = {**current.data(), **patch}
            # null removes a field (RFC 7396), which leaves a mandatory one missing; an unknown field, null or
            # not, stays for validation to refuse, as in any other write.
            kept = {field: value for field, value in merged.items() if value is not None or field not in CONTACT_FIELDS}
            data = _validated(kept, current.email)
            return _update(store, current, now, data, origin)
        case DeleteContact(contact_id, expected_version):
            current, now = _locked(store, contact_id, expected_version)
            deleted = _next_version(current, now)
            store.mark_deleted(deleted, _event("contact.deleted", deleted, [], origin), origin.correlation_id)
            return None
    raise CommandRefused(f"unknown command {command!r}")


def _validated(body: Any, stored_email: str | None = None) -> ContactData:
    try:
        return ContactData.from_body(body, stored_email)
    except ValidationError as error:
        raise InvalidContact.from_validation_error(error) from None


def _locked(store: ContactStore, contact_id: int, expected_version: int | None) -> tuple[Contact, datetime]:
    locked = store.lock(contact_id) if 0 < contact_id <= _MAX_ID else None
    if locked is None:
        raise ContactNotFound(contact_id)
    current = locked[0]
    if expected_version is not None and expected_version != current.version:
        raise VersionMismatch(expected_version, current.version)
    return locked


def _next_version(current: Contact, now: datetime, data: ContactData | None = None) -> Contact:
    changes: dict[str, Any] = {"version": current.version + 1, "updated_at": now}
    return current.model_copy(update=changes if data is None else {**changes, **data.model_dump()})


def _update(store: ContactStore, current: Contact, now: datetime, data: ContactData, origin: Origin) -> Contact:
    """Write a new version if anything changed; a write that changes nothing is not a new version."""
    new = data.model_dump()
    changed = [field for field in CONTACT_FIELDS if new[field] != getattr(current, field)]
    if not changed:
        return current
    contact = _next_version(current, now, data)
    store.update(contact, _event("contact.updated", contact, changed, origin), origin.correlation_id)
    return contact


def _event(event_type: str, state: Contact, changed_fields: list[str], origin: Origin) -> dict[str, Any]:
    """The event body of SPEC §4 (all but `seq`, which the relay assigns when it publishes)."""
    return {
        "type": event_type,
        "event_id": str(uuid.uuid4()),
        "contact_id": state.id,
        "version": state.version,
        "contact": None if event_type == "contact.deleted" else state.model_dump(mode="json"),
        "changed_fields": changed_fields,
        "source": origin.source,
        "actor": origin.actor,
        "at": state.updated_at.isoformat().replace("+00:00", "Z"),
    }
