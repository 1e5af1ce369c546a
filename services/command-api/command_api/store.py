"""Every SQL statement of the write side, on one connection of the caller's.

A write is two statements: one reads — locks the contact, or reserves a new id — together with the
transaction's time; the handler works out the new state and its event in Python; one statement writes
both, the change and its outbox row. The handlers run the two in a transaction where they must be
atomic together (an update, a delete, anything with an idempotency key); a plain create needs none,
its write statement being atomic by itself. (psycopg's pipeline mode would save round trips too, but
measured slower: its bookkeeping costs more Python than the round trips it saves.)
"""

from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Json, Jsonb

from shared.models import Contact

_COLUMNS = "id, first_name, last_name, email, phone, version, created_at, updated_at"

# Each write statement also appends the event to the outbox; a trigger wakes the relay at commit.
_APPEND_EVENT = """
    INSERT INTO outbox (event_id, routing_key, payload, correlation_id)
    VALUES (%(event_id)s, %(routing_key)s, %(payload)s, %(correlation_id)s)"""

LOCK = f"SELECT {_COLUMNS}, now() AS now FROM contacts WHERE id = %s AND deleted_at IS NULL FOR UPDATE"

_INSERT = f"""
    WITH event AS ({_APPEND_EVENT})
    INSERT INTO contacts (id, first_name, last_name, email, phone, version, created_at, updated_at)
    OVERRIDING SYSTEM VALUE
    VALUES (%(id)s, %(first_name)s, %(last_name)s, %(email)s, %(phone)s, %(version)s, %(created_at)s, %(updated_at)s)"""

UPDATE = f"""
    WITH event AS ({_APPEND_EVENT})
    UPDATE contacts SET first_name = %(first_name)s, last_name = %(last_name)s, email = %(email)s,
                        phone = %(phone)s, version = %(version)s, updated_at = %(updated_at)s
    WHERE id = %(id)s"""

_MARK_DELETED = f"""
    WITH event AS ({_APPEND_EVENT})
    UPDATE contacts SET deleted_at = %(updated_at)s, updated_at = %(updated_at)s, version = %(version)s
    WHERE id = %(id)s"""


class ContactStore:
    def __init__(self, conn: Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def reserve_id(self) -> tuple[int, datetime]:
        """An id for a new contact, and the transaction's time."""
        row = self._conn.execute(
            "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) AS id, now() AS now"
        ).fetchone()
        assert row is not None
        return int(row["id"]), row["now"]

    def lock(self, contact_id: int) -> tuple[Contact, datetime] | None:
        """The live contact, locked until the transaction ends so writers queue up behind each other,
        and the transaction's time."""
        row = self._conn.execute(LOCK, (contact_id,)).fetchone()
        return None if row is None else (Contact.model_validate(row), row["now"])

    def insert(self, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        self._write(_INSERT, contact, event, correlation_id)

    def update(self, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        self._write(UPDATE, contact, event, correlation_id)

    def mark_deleted(self, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        self._write(_MARK_DELETED, contact, event, correlation_id)

    def claim_idempotency_key(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """Claim the key for this transaction, or return what an earlier request with it recorded.

        A concurrent request with the same key waits on the unique index until this one ends.
        """
        claimed = self._conn.execute(
            """INSERT INTO idempotency_keys (key, fingerprint) VALUES (%s, %s)
               ON CONFLICT (key) DO NOTHING RETURNING key""",
            (key, fingerprint),
        ).fetchone()
        if claimed is not None:
            return None
        return self._conn.execute("SELECT fingerprint, result FROM idempotency_keys WHERE key = %s", (key,)).fetchone()

    def record_idempotent_result(self, key: str, contact: Contact | None) -> None:
        self._conn.execute(
            "UPDATE idempotency_keys SET contact_id = %s, result = %s WHERE key = %s",
            (contact and contact.id, contact and Jsonb(contact.model_dump(mode="json")), key),
        )

    def _write(self, statement: str, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        self._conn.execute(statement, write_parameters(contact.model_dump(), event, correlation_id))


def write_parameters(contact: dict[str, Any], event: dict[str, Any], correlation_id: str | None) -> dict[str, Any]:
    """The parameters of a write statement: the contact's columns and its event's outbox row."""
    return {
        **contact,
        "event_id": event["event_id"],
        "routing_key": event["type"],
        "payload": Json(event),
        "correlation_id": correlation_id,
    }
