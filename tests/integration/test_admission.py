"""Admission control (issue 21, S4b): a write that finds its command-api worker with as many writes under
way as it takes is refused at once, 503 with Retry-After, instead of waiting in a queue without bound;
every write it took is done, once."""

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import wait_until
from tests.support.stack import Launch, start_command_api

pytestmark = pytest.mark.integration


def _waiting_for_a_lock(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid)
               WHERE NOT granted AND datname = current_database()"""
        ).fetchone()
    return int(row[0]) if row else 0


def _version_and_events(database_url: str, contact_id: int) -> tuple[int, list[str]]:
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SELECT version FROM contacts WHERE id = %s", (contact_id,)).fetchone()
        rows = conn.execute(
            "SELECT routing_key FROM outbox WHERE (payload->>'contact_id')::bigint = %s ORDER BY id", (contact_id,)
        ).fetchall()
    assert version is not None
    return int(version[0]), [row[0] for row in rows]


def test_a_write_past_those_under_way_is_refused_at_once_and_those_taken_are_done_once(
    launch: Launch, infra: Infra, http: requests.Session
) -> None:
    # One worker that takes one write at a time; the write it takes waits as long as it must (a long
    # statement timeout), so that only the bound can refuse the next.
    base = start_command_api(
        launch,
        "command-api-admission",
        command_api_workers=1,
        command_api_max_writes_in_progress=1,
        db_statement_timeout_ms=120_000,
        create_reply_delay_seconds=0,
    )
    created = http.post(f"{base}/api/contacts", json=new_contact())
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]

    def patch(n: int) -> requests.Response:
        return http.patch(f"{base}/api/contacts/{contact_id}", json={"phone": f"+1 555 010{n} 00"}, timeout=120)

    with psycopg.connect(infra.database_url) as holder, ThreadPoolExecutor(1) as client:
        # The contact's row held here: the first PATCH stays under way while it waits for it.
        holder.execute("SELECT 1 FROM contacts WHERE id = %s FOR UPDATE", (contact_id,))
        first = client.submit(patch, 1)
        wait_until(lambda: _waiting_for_a_lock(infra.database_url) == 1, message="the first PATCH to wait on the row")
        refused = patch(2)
        assert not first.done()  # refused while the write under way was still held
        holder.rollback()
        taken = first.result()
    after = patch(3)  # the bound counts writes under way, not writes ever taken

    assert refused.status_code == 503, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["status"] == 503
    assert (taken.status_code, after.status_code) == (200, 200), (taken.text, after.text)
    # The two taken made a version and an event each; the refused one, nothing.
    assert _version_and_events(infra.database_url, contact_id) == (
        3,
        ["contact.created", "contact.updated", "contact.updated"],
    )
