"""Every SQL statement of the write side, on one connection inside the caller's transaction."""

from typing import Any

from psycopg import Connection, errors
from psycopg.types.json import Json, Jsonb

from command_api.errors import DuplicateEmail
from shared.models import Contact

_COLUMNS = "id, first_name, last_name, email, phone, version, created_at, updated_at"


class ContactStore:
    def __init__(self, conn: Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def insert(self, data: dict[str, str]) -> Contact:
        row = self._unique_email(
            f"""INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
                VALUES (%(first_name)s, %(last_name)s, %(email)s, %(phone)s, 1, now(), now())
                RETURNING {_COLUMNS}""",
            data,
        )
        return Contact.model_validate(row)

    def lock(self, contact_id: int) -> Contact | None:
        """The live contact, locked until the transaction ends so writers queue up behind each other."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM contacts WHERE id = %s AND deleted_at IS NULL FOR UPDATE", (contact_id,)
        ).fetchone()
        return None if row is None else Contact.model_validate(row)

    def update(self, contact_id: int, data: dict[str, str], version: int) -> Contact:
        row = self._unique_email(
            f"""UPDATE contacts SET first_name = %(first_name)s, last_name = %(last_name)s, email = %(email)s,
                       phone = %(phone)s, version = %(version)s, updated_at = now()
                WHERE id = %(id)s RETURNING {_COLUMNS}""",
            {**data, "version": version, "id": contact_id},
        )
        return Contact.model_validate(row)

    def mark_deleted(self, contact_id: int, version: int) -> Contact:
        row = self._conn.execute(
            f"""UPDATE contacts SET deleted_at = now(), updated_at = now(), version = %s
                WHERE id = %s RETURNING {_COLUMNS}""",
            (version, contact_id),
        ).fetchone()
        return Contact.model_validate(row)

    def append_event(self, event: dict[str, Any], routing_key: str, correlation_id: str | None) -> None:
        """Record the event in the outbox; a trigger wakes the relay when the transaction commits."""
        self._conn.execute(
            "INSERT INTO outbox (event_id, routing_key, payload, correlation_id) VALUES (%s, %s, %s, %s)",
            (event["event_id"], routing_key, Json(event), correlation_id),
        )

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

    def _unique_email(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self._conn.execute(query, params).fetchone()
        except errors.UniqueViolation as error:
            if error.diag.constraint_name == "contacts_email_key":
                raise DuplicateEmail() from None
            raise
