"""The write path end to end: command-api on real PostgreSQL, the relay on real RabbitMQ."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests

from shared.models import ContactEvent
from tests.conftest import Launch, start_command_api
from tests.support.amqp import EventTap
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import TIMEOUT_FACTOR, ServiceProcess

pytestmark = pytest.mark.integration


def create(http: requests.Session, base: str, **fields: Any) -> dict[str, Any]:
    reply = http.post(f"{base}/api/contacts", json=new_contact(**fields), timeout=30)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def test_concurrent_creates_whose_emails_differ_only_in_case_yield_exactly_one_contact(
    command_api: str, infra: Infra, http: requests.Session
) -> None:
    body = new_contact()
    variants = [body["email"], body["email"].upper(), body["email"].title(), body["email"].swapcase()] * 4
    barrier = threading.Barrier(len(variants))

    def attempt(email: str) -> int:
        barrier.wait()
        return http.post(f"{command_api}/api/contacts", json={**body, "email": email}, timeout=30).status_code

    with ThreadPoolExecutor(len(variants)) as pool:
        statuses = sorted(pool.map(attempt, variants))
    assert statuses == [201] + [409] * (len(variants) - 1)
    with psycopg.connect(infra.database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM contacts WHERE lower(email) = lower(%s)", (body["email"],)).fetchone()
    assert rows == (1,)


def test_every_successful_write_publishes_exactly_one_event_with_the_documented_body(
    command_api: str, relay: ServiceProcess, events: EventTap, http: requests.Session, infra: Infra
) -> None:
    contact = create(http, command_api)
    url = f"{command_api}/api/contacts/{contact['id']}"
    replaced = http.put(url, json=new_contact(first_name="Augusta"), headers={"If-Match": '"1"'})
    assert replaced.status_code == 200, replaced.text
    patched = http.patch(url, json={"phone": "+1 (555) 010-0999"}, headers={"If-Match": replaced.headers["ETag"]})
    assert patched.status_code == 200, patched.text
    assert http.patch(url, json={"phone": "+1 (555) 010-0999"}).json()["version"] == 3, "a no-op is not a version"
    assert http.delete(url, headers={"If-Match": '"3"'}).status_code == 204

    events.relayed(infra.database_url)
    delivered = events.of_contact(contact["id"], 0, timeout=0)
    assert [(e.routing_key, e.body["version"]) for e in delivered] == [
        ("contact.created", 1),
        ("contact.updated", 2),
        ("contact.updated", 3),
        ("contact.deleted", 4),
    ]
    bodies = [ContactEvent.model_validate(event.body) for event in delivered]
    assert set(delivered[0].body) == {
        "type",
        "seq",
        "event_id",
        "contact_id",
        "version",
        "contact",
        "changed_fields",
        "source",
        "actor",
        "at",
    }
    assert bodies[0].contact is not None and bodies[0].contact.model_dump(mode="json") == contact
    assert bodies[0].changed_fields == ["first_name", "last_name", "email", "phone"]
    assert sorted(bodies[1].changed_fields) == ["email", "first_name", "last_name"]
    assert bodies[2].changed_fields == ["phone"]
    assert bodies[2].contact is not None and bodies[2].contact.model_dump(mode="json") == patched.json()
    assert bodies[3].contact is None and bodies[3].changed_fields == []
    assert {body.source for body in bodies} == {"api"}
    assert [body.seq for body in bodies] == sorted({body.seq for body in bodies})
    for event in delivered:
        assert event.properties.content_type == "application/json"
        assert event.properties.delivery_mode == 2
        assert event.properties.message_id == event.body["event_id"]
        assert event.properties.headers["epoch"]


def test_create_reply_is_deferred_while_the_contact_is_committed_and_published_at_once(
    launch: Launch, relay: ServiceProcess, events: EventTap, infra: Infra, http: requests.Session
) -> None:
    delay = 3.0 * TIMEOUT_FACTOR  # the event comes within half of it, the reply after all of it
    base = start_command_api(launch, "command-api-deferred", create_reply_delay_seconds=delay, command_api_workers=1)
    body = new_contact()

    def post() -> tuple[requests.Response, float]:
        started = time.monotonic()
        response = http.post(f"{base}/api/contacts", json=body, timeout=30 * TIMEOUT_FACTOR)
        return response, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        posting = pool.submit(post)
        published = events.wait_for(1, lambda event: (event["contact"] or {}).get("email") == body["email"])
        published_after = time.monotonic() - started
        assert not posting.done(), "the reply came before the event was published"
        with psycopg.connect(infra.database_url) as conn:
            assert conn.execute("SELECT 1 FROM contacts WHERE email = %s", (body["email"],)).fetchone() == (1,)
        reply, elapsed = posting.result()
    assert published_after < delay / 2
    assert reply.status_code == 201, reply.text
    assert elapsed >= delay
    assert [reply.json()["id"]] == [event.body["contact_id"] for event in published]
