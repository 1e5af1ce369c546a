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


# Imports (SPEC §11): a job per uploaded file, its counts and its rejected rows (migration 0007).

_JOB_COLUMNS = "id, owner_id, actor, source, correlation_id, media_type, status, rows, processed, created, rejected"

#: Announce the job the CTE `job` changed to the notifier (notifier.imports), as the transaction commits.
_ANNOUNCE_JOB = """
    SELECT pg_notify('import_progress', json_build_object(
        'type', 'import', 'id', id, 'owner_id', owner_id, 'status', status,
        'rows', rows, 'created', created, 'rejected', rejected)::text) FROM job"""

#: Count a batch of rows as processed, if the job is still where its worker left it (else no row: another
#: worker has moved it on, and the batch rolls back); the job is done with its last row, and forgets its file.
_ADVANCE_JOB = f"""
    WITH job AS (
        UPDATE import_jobs SET processed = processed + %(rows)s, created = created + %(created)s,
                               rejected = rejected + %(rejected)s, updated_at = now(),
                               status = CASE WHEN processed + %(rows)s >= rows THEN 'done' ELSE status END,
                               content = CASE WHEN processed + %(rows)s >= rows THEN NULL ELSE content END
        WHERE id = %(id)s AND processed = %(processed)s AND status = 'running'
        RETURNING id, owner_id, status, rows, created, rejected)
    {_ANNOUNCE_JOB}"""

_END_JOB = f"""
    WITH job AS (
        UPDATE import_jobs SET status = %(status)s, rows = %(rows)s, content = CASE WHEN %(status)s = 'running'
                               THEN content END, updated_at = now()
        WHERE id = %(id)s AND status = 'running'
        RETURNING id, owner_id, status, rows, created, rejected)
    {_ANNOUNCE_JOB}"""


class ImportStore:
    def __init__(self, conn: Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def insert_job(
        self,
        owner_id: int | None,
        actor: dict[str, object],
        source: str,
        correlation_id: str | None,
        media_type: str,
        content: bytes,
    ) -> dict[str, Any]:
        row = self._conn.execute(
            f"""INSERT INTO import_jobs (owner_id, actor, source, correlation_id, media_type, content)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_JOB_COLUMNS}""",
            (owner_id, Jsonb(actor), source, correlation_id, media_type, content),
        ).fetchone()
        assert row is not None
        return row

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM import_jobs WHERE id = %s", (job_id,)).fetchone()

    def errors(self, job_id: str) -> list[dict[str, Any]]:
        return self._conn.execute(
            "SELECT line, field, message FROM import_errors WHERE job_id = %s ORDER BY line, field", (job_id,)
        ).fetchall()

    def running_jobs(self) -> list[str]:
        """The jobs not done yet, oldest first."""
        rows = self._conn.execute("SELECT id::text FROM import_jobs WHERE status = 'running' ORDER BY created_at")
        return [row["id"] for row in rows.fetchall()]

    def try_claim(self, job_id: str) -> dict[str, Any] | None:
        """The job with its file, if it is still running and no other session holds it; held by this
        session (an advisory lock, let go when the session ends however it ends) until `release`."""
        locked = self._conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS locked", (job_id,)
        ).fetchone()
        if locked is None or not locked["locked"]:
            return None
        job = self._conn.execute(
            f"""UPDATE import_jobs SET attempts = attempts + 1 WHERE id = %s AND status = 'running'
                RETURNING {_JOB_COLUMNS}, content, attempts""",
            (job_id,),
        ).fetchone()
        if job is None:
            self.release(job_id)
        return job

    def release(self, job_id: str) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (job_id,))

    def rejected_lines(self, job_id: str) -> set[int]:
        rows = self._conn.execute("SELECT DISTINCT line FROM import_errors WHERE job_id = %s", (job_id,))
        return {row["line"] for row in rows.fetchall()}

    def end(self, job_id: str, status: str, rows: int, reason: str | None = None) -> None:
        """Set the job's row count (still running), or end it `failed` (saying why, as an error of the file's
        first line) or `done`."""
        with self._conn.transaction():
            if reason is not None:
                self._conn.execute(
                    "INSERT INTO import_errors (job_id, line, field, message) VALUES (%s, 1, 'file', %s)",
                    (job_id, reason),
                )
            self._conn.execute(_END_JOB, {"id": job_id, "status": status, "rows": rows})

    def advance(self, job_id: str, processed: int, created: int, errors: list[tuple[int, str, str]]) -> bool:
        """Record a batch: its rejected rows' errors (line, field, message) and the job's new counts, in the
        caller's transaction; False if the job is no longer at `processed` (the caller must roll back)."""
        rejected_lines = {line for line, _, _ in errors}
        if errors:
            lines, fields, messages = (list(column) for column in zip(*errors, strict=True))
            self._conn.execute(
                """INSERT INTO import_errors (job_id, line, field, message)
                   SELECT %s, * FROM unnest(%s::integer[], %s::text[], %s::text[])""",
                (job_id, lines, fields, messages),
            )
        advanced = self._conn.execute(
            _ADVANCE_JOB,
            {
                "id": job_id,
                "processed": processed,
                "rows": created + len(rejected_lines),
                "created": created,
                "rejected": len(rejected_lines),
            },
        ).fetchone()
        return advanced is not None
