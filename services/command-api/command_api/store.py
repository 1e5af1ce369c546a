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


# Accounts (SPEC §8): users and their sessions. Revoking a session announces it on `identity` in the same
# statement, so every instance hears of it as it commits (shared.identity.Revocations).

_USER_COLUMNS = "id, username, name, role, disabled, created_at, updated_at"

_ANNOUNCE_REVOKED = "SELECT pg_notify('identity', id::text) FROM revoked"

_REVOKE_SESSION = f"""
    WITH revoked AS (UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id)
    {_ANNOUNCE_REVOKED}"""

_REVOKE_SESSIONS_OF = f"""
    WITH revoked AS (UPDATE sessions SET revoked_at = now()
                     WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now() RETURNING id)
    {_ANNOUNCE_REVOKED}"""

# Each of the fields a PATCH may leave out keeps its value when its parameter is null.
_UPDATE_USER = f"""
    UPDATE users SET name = coalesce(%(name)s, name), role = coalesce(%(role)s, role),
                     password_hash = coalesce(%(password_hash)s, password_hash),
                     disabled = coalesce(%(disabled)s, disabled), updated_at = now()
    WHERE id = %(id)s RETURNING {_USER_COLUMNS}"""


class AccountStore:
    def __init__(self, conn: Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def credentials_of(self, username: str) -> dict[str, Any] | None:
        """The user of that username (whatever its case), with their password hash."""
        return self._conn.execute(
            f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower(%s)", (username,)
        ).fetchone()

    def users(self) -> list[dict[str, Any]]:
        return self._conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id").fetchall()

    def insert_user(self, username: str, name: str, role: str, password_hash: str) -> dict[str, Any]:
        """The new user; raises UniqueViolation if the username is taken, whatever its case."""
        row = self._conn.execute(
            f"""INSERT INTO users (username, name, role, password_hash) VALUES (%s, %s, %s, %s)
                RETURNING {_USER_COLUMNS}""",
            (username, name, role, password_hash),
        ).fetchone()
        assert row is not None
        return row

    def insert_first_user(self, username: str, name: str, role: str, password_hash: str) -> bool:
        """Add the user only if there is none yet; whether it was added."""
        added = self._conn.execute(
            """INSERT INTO users (username, name, role, password_hash)
               SELECT %s, %s, %s, %s WHERE NOT EXISTS (SELECT FROM users)
               ON CONFLICT ((lower(username))) DO NOTHING RETURNING id""",
            (username, name, role, password_hash),
        ).fetchone()
        return added is not None

    def update_user(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        """The user after `changes` (any of name, role, password_hash, disabled), or None if absent."""
        fields = {field: changes.get(field) for field in ("name", "role", "password_hash", "disabled")}
        return self._conn.execute(_UPDATE_USER, {**fields, "id": user_id}).fetchone()

    def insert_session(self, session_id: str, user_id: int, expires_at: datetime) -> None:
        self._conn.execute(
            "INSERT INTO sessions (id, user_id, expires_at) VALUES (%s, %s, %s)", (session_id, user_id, expires_at)
        )

    def revoke_session(self, session_id: str) -> None:
        self._conn.execute(_REVOKE_SESSION, (session_id,))

    def lock_enabled_admins(self) -> list[int]:
        """The ids of the admins not disabled, their rows locked until the transaction ends: two admins
        demoting or disabling each other at once cannot both see the other one left."""
        rows = self._conn.execute("SELECT id FROM users WHERE role = 'admin' AND NOT disabled FOR UPDATE").fetchall()
        return [row["id"] for row in rows]

    def revoke_sessions_of(self, user_id: int) -> None:
        self._conn.execute(_REVOKE_SESSIONS_OF, (user_id,))
