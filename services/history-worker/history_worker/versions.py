"""An event body as a version row, and the one statement that records a batch of them idempotently."""

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from shared.models import ContactEvent

MAX_BIGINT = 2**63 - 1
MAX_VERSION = 2**31 - 1

Row = dict[str, Any]


class PoisonMessage(Exception):
    """A message no retry can record; its reason goes with it to the dead-letter queue."""


def version_row(body: bytes) -> Row:
    """The `contact_versions` row an event body describes, or PoisonMessage saying what is wrong."""
    try:
        event = ContactEvent.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors(include_url=False)[:5]
        )
        raise PoisonMessage(f"not a contact event: {problems}") from None
    if not (0 < event.contact_id <= MAX_BIGINT and 0 < event.version <= MAX_VERSION and 0 < event.seq <= MAX_BIGINT):
        raise PoisonMessage("contact_id, version and seq must be positive and in range")
    if (event.contact is None) != (event.type == "contact.deleted"):
        raise PoisonMessage("a deletion carries no contact; every other event carries one")
    if event.contact is not None and (event.contact.id, event.contact.version) != (event.contact_id, event.version):
        raise PoisonMessage("the contact snapshot's id and version differ from the event's")
    return {
        "contact_id": event.contact_id,
        "version": event.version,
        "op": event.type.removeprefix("contact."),
        "contact": None if event.contact is None else Jsonb(event.contact.model_dump(mode="json")),
        "changed_fields": event.changed_fields,
        "source": event.source,
        "actor": None if event.actor is None else Jsonb(event.actor.model_dump(mode="json")),
        "at": event.at,
        "event_id": event.event_id,
        "seq": event.seq,
    }


def record_versions(conn: Connection[Any], rows: list[Row]) -> None:
    """Insert the rows in the caller's transaction; a version already recorded is left as it is."""
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO contact_versions
                   (contact_id, version, op, contact, changed_fields, source, actor, at, event_id, seq)
               VALUES (%(contact_id)s, %(version)s, %(op)s, %(contact)s, %(changed_fields)s, %(source)s,
                       %(actor)s, %(at)s, %(event_id)s, %(seq)s)
               ON CONFLICT (contact_id, version) DO NOTHING""",
            rows,
        )
