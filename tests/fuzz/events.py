"""For the history worker's hostile-input tests: the worker under test, contact events as the relay
publishes them, and whether one has its version row."""

import contextlib
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic_core import from_json

from shared.broker import HISTORY_QUEUE
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.read_side import start_history_worker
from tests.support.stack import Launch
from tests.support.watch import consuming


@contextlib.contextmanager
def history_worker(infra: Infra, name: str) -> Iterator[ServiceProcess]:
    """A history worker logging to `name`.log, once it consumes its queue; stopped after the block."""

    def start(launch: Launch, name: str) -> ServiceProcess:
        return start_history_worker(launch, name, history_batch_wait_ms=20)[0]

    with consuming(infra, HISTORY_QUEUE, name, start) as worker:
        yield worker


def own_contact_ids() -> Iterator[int]:
    """Contact ids of this caller's own, far from any other test's (and from each other caller's)."""
    return itertools.count(3 * 10**12 + uuid.uuid4().int % 10**12)


def real_event(contact_id: int, version: int = 1, op: str = "created") -> dict[str, Any]:
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    contact = {
        "id": contact_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"ada.{uuid.uuid4().hex[:12]}@example.com",
        "phone": "+1 555 0100",
        "version": version,
        "created_at": at,
        "updated_at": at,
    }
    return {
        "type": f"contact.{op}",
        "seq": contact_id,
        "event_id": str(uuid.uuid4()),
        "contact_id": contact_id,
        "version": version,
        "contact": None if op == "deleted" else contact,
        "changed_fields": ["first_name", "last_name", "email", "phone"],
        "source": "api",
        "at": at,
    }


def version_exists(infra: Infra, body: bytes) -> bool:
    """Whether the event in `body`, if it is one, has its version row."""
    try:
        event = from_json(body)
        key = (int(event["contact_id"]), int(event["version"]))
    except (ValueError, TypeError, KeyError, OverflowError):  # not JSON (too deep included), not an event
        return False
    if not (0 < key[0] < 2**63 and 0 < key[1] < 2**31):
        return False
    with psycopg.connect(infra.database_url) as conn:
        found = conn.execute("SELECT 1 FROM contact_versions WHERE contact_id = %s AND version = %s", key).fetchone()
    return found is not None
