"""Admission control (issue 21, S4b): a request that finds command-api's queue for a database connection
full is refused at once, 503 with Retry-After, instead of waiting in a queue without bound; every request
it took is done, once."""

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

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


def test_a_request_past_the_full_queue_is_refused_at_once_and_those_taken_are_done_once(
    launch: Launch, infra: Infra, http: requests.Session
) -> None:
    # One worker with one connection and room for one request queued behind it; a queued request waits
    # as long as it takes (long pool and statement timeouts), so that only the full queue can refuse one.
    base = start_command_api(
        launch,
        "command-api-admission",
        command_api_workers=1,
        db_pool_min_size=1,
        db_pool_max_size=1,
        db_pool_timeout_seconds=120,
        db_statement_timeout_ms=120_000,
        command_api_max_waiting_requests=1,
        create_reply_delay_seconds=0,
    )
    created = http.post(f"{base}/api/contacts", json=new_contact())
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]

    def patch(n: int) -> requests.Response:
        return http.patch(f"{base}/api/contacts/{contact_id}", json={"phone": f"+1 555 010{n} 00"}, timeout=120)

    with psycopg.connect(infra.database_url) as holder, ThreadPoolExecutor(3) as clients:
        # The contact's row held here: the first PATCH keeps the one connection while it waits for it.
        holder.execute("SELECT 1 FROM contacts WHERE id = %s FOR UPDATE", (contact_id,))
        first = clients.submit(patch, 1)
        wait_until(lambda: _waiting_for_a_lock(infra.database_url) == 1, message="the first PATCH to wait on the row")
        # Two more: one takes the queue's one place, the other finds it full.
        others = [clients.submit(patch, n) for n in (2, 3)]
        done, _ = wait(others, timeout=60, return_when=FIRST_COMPLETED)
        assert done, "neither request was refused while the queue was full"
        refused = done.pop().result()
        assert not first.done()  # refused while the queue it found full was still held
        holder.rollback()  # let the first one (and then the queued one) through
        replies = [first.result(), *(future.result() for future in others)]

    assert refused.status_code == 503, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["status"] == 503
    assert sorted(reply.status_code for reply in replies) == [200, 200, 503]
    # The two taken made a version and an event each; the refused one, nothing.
    assert _versions_and_events(infra, contact_id) == (3, ["contact.created", "contact.updated", "contact.updated"])


def _versions_and_events(infra: Infra, contact_id: int) -> tuple[int, list[Any]]:
    with psycopg.connect(infra.database_url) as conn:
        version = conn.execute("SELECT version FROM contacts WHERE id = %s", (contact_id,)).fetchone()
        rows = conn.execute(
            "SELECT routing_key FROM outbox WHERE (payload->>'contact_id')::bigint = %s ORDER BY id", (contact_id,)
        ).fetchall()
    assert version is not None
    return int(version[0]), [row[0] for row in rows]
