"""The outbox relay: nothing lost while RabbitMQ is unreachable, nothing published twice, one leader at a time;
its housekeeping."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.conftest import Launch, start_relay
from tests.support.amqp import EventTap, unpublished
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, wait_until
from tests.support.tcp_proxy import TcpProxy, proxied

pytestmark = pytest.mark.integration


@pytest.fixture
def no_other_relay(relay: ServiceProcess) -> Iterator[None]:
    """Stop the session's relay so the relays of the test lead; start it again after."""
    relay.stop()
    yield
    relay.start()


@pytest.fixture
def broker_link(infra: Infra) -> Iterator[tuple[TcpProxy, str]]:
    """A cuttable link to the real RabbitMQ, and the AMQP URL that goes through it."""
    proxy, url = proxied(infra.amqp_url, 5672)
    yield proxy, url
    proxy.close()


def write_many(http: requests.Session, command_api: str, count: int) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: http.post(f"{command_api}/api/contacts", json=new_contact()), range(count)))
    assert {reply.status_code for reply in replies} == {201}
    return [reply.json()["id"] for reply in replies]


def test_writes_made_while_the_broker_is_unreachable_are_all_delivered_once_in_seq_order(
    command_api: str,
    launch: Launch,
    events: EventTap,
    broker_link: tuple[TcpProxy, str],
    infra: Infra,
    no_other_relay: None,
    http: requests.Session,
) -> None:
    proxy, amqp_url = broker_link
    start_relay(launch, "relay-behind-proxy", amqp_url=amqp_url, relay_poll_seconds=0.2, relay_max_backoff_seconds=1)
    before = write_many(http, command_api, 5)
    events.wait_for(5, lambda body: body["contact_id"] in before)
    # Settle the confirms first: events in flight when a link drops are sent again (same event_id and seq).
    wait_until(lambda: unpublished(infra.database_url) == 0, message="the first writes to be confirmed")

    proxy.cut()
    during = write_many(http, command_api, 40)
    assert unpublished(infra.database_url) >= 40, "the relay published through a cut link"
    proxy.restore()

    events.relayed(infra.database_url)
    delivered = events.wait_for(45, lambda body: body["contact_id"] in before + during, timeout=0)
    ours = [event for event in events.events if event.body["contact_id"] in before + during]
    assert sorted(event.body["contact_id"] for event in ours) == sorted(before + during), "each exactly once"
    seqs = [event.body["seq"] for event in ours]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len(delivered) == 45


def test_a_second_relay_waits_for_the_leader_and_no_event_is_published_twice(
    command_api: str, launch: Launch, events: EventTap, infra: Infra, no_other_relay: None, http: requests.Session
) -> None:
    first = start_relay(launch, "relay-a", relay_poll_seconds=0.2)
    start_relay(launch, "relay-b", relay_poll_seconds=0.2)
    created = write_many(http, command_api, 30)
    first.stop()  # the other relay takes over
    created += write_many(http, command_api, 30)
    events.relayed(infra.database_url)
    ids = [event.body["contact_id"] for event in events.events if event.body["contact_id"] in created]
    assert sorted(ids) == sorted(created)
    seqs = [event.body["seq"] for event in events.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_events_numbered_but_never_confirmed_are_sent_first_and_keep_their_numbers(
    command_api: str, launch: Launch, events: EventTap, infra: Infra, no_other_relay: None, http: requests.Session
) -> None:
    created = write_many(http, command_api, 3)
    with psycopg.connect(infra.database_url) as conn:
        # What a relay that died between numbering and publishing leaves behind: two rows with a seq.
        numbered = conn.execute(
            """WITH counter AS (UPDATE relay_state SET last_seq = last_seq + 2 RETURNING last_seq),
                    oldest AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM outbox
                               WHERE published_at IS NULL ORDER BY id LIMIT 2)
               UPDATE outbox SET seq = counter.last_seq - 2 + oldest.n FROM counter, oldest
               WHERE outbox.id = oldest.id RETURNING (payload->>'contact_id')::bigint, seq"""
        ).fetchall()
    start_relay(launch, "relay-after-a-crash", relay_poll_seconds=0.2)
    events.relayed(infra.database_url)
    delivered = events.wait_for(3, lambda body: body["contact_id"] in created, timeout=0)
    assert [(event.body["contact_id"], event.body["seq"]) for event in delivered[:2]] == sorted(
        numbered, key=lambda r: r[1]
    )
    seqs = [event.body["seq"] for event in events.events if event.body["contact_id"] in created]
    assert len(seqs) == 3 and seqs == sorted(set(seqs))


def test_the_relay_prunes_published_events_and_idempotency_keys_past_their_retention(
    infra: Infra, launch: Launch, no_other_relay: None
) -> None:
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO outbox (event_id, routing_key, payload, created_at, seq, published_at)
               VALUES (gen_random_uuid(), 'contact.updated', '{}', now() - interval '26 hours', -1,
                       now() - interval '25 hours')"""
        )
        conn.execute(
            """INSERT INTO idempotency_keys (key, fingerprint, created_at)
               VALUES ('http:old-key', 'f', now() - interval '25 hours'), ('http:new-key', 'f', now())"""
        )

    start_relay(launch, "relay-pruning", relay_poll_seconds=0.2)

    def remaining() -> tuple[int, list[str]]:
        with psycopg.connect(infra.database_url) as conn:
            old_events = conn.execute("SELECT count(*) FROM outbox WHERE seq = -1").fetchone()
            keys = conn.execute("SELECT key FROM idempotency_keys WHERE key LIKE 'http:%-key'").fetchall()
        return (old_events[0] if old_events else -1), sorted(key for (key,) in keys)

    wait_until(lambda: remaining() == (0, ["http:new-key"]), timeout=15, message="old rows pruned, new ones kept")


def test_the_relay_cuts_search_blocks_that_grew_past_twice_their_size(
    infra: Infra, launch: Launch, no_other_relay: None
) -> None:
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute("CALL rebuild_search_blocks()")  # blocks of 1,000 rows, for the rows there are
        conn.execute(
            """INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
               SELECT 'Grew', 'Zzyzx-' || %(tag)s, 'grew.' || n || '.' || %(tag)s || '@example.com',
                      '+1 555 0100', 1, now(), now()
               FROM generate_series(1, 2500) AS n""",
            {"tag": tag},
        )
        conn.execute("ANALYZE contacts")

    start_relay(launch, "relay-cutting-blocks", relay_poll_seconds=0.2)

    def blocks_of_the_new_rows() -> list[int]:
        with psycopg.connect(infra.database_url) as conn:
            rows = conn.execute(
                "SELECT live_rows FROM search_blocks WHERE sort_field = 'last_name' AND lo_key LIKE %s",
                (f"Zzyzx-{tag}%",),
            ).fetchall()
        return [live for (live,) in rows]

    wait_until(lambda: len(blocks_of_the_new_rows()) >= 2, timeout=30, message="the grown block cut")
    assert all(live <= 2000 for live in blocks_of_the_new_rows())
