"""Presence (SPEC §11) on real notifiers and real RabbitMQ: shared across instances through `contacts.presence`,
gone when a tab goes (closed, or silent) or its notifier is killed, and bounded per connection."""

import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from notifier.presence import Announcement

from shared.broker import PRESENCE_EXCHANGE
from tests.conftest import Launch
from tests.integration.test_notifier import metric
from tests.support.asyncapi import check_message
from tests.support.infra import Infra
from tests.support.notifier import LiveClient, RawClient, handshake_headers, listener_token, start_notifier
from tests.support.processes import TIMEOUT_FACTOR, ServiceProcess, wait_until

pytestmark = pytest.mark.integration

#: Contact ids of this module's own, far beyond real and synthetic ones, one per test.
_contact_ids = itertools.count(2 * 10**15)
_user_ids = itertools.count(2 * 10**12)


def person(name: str, role: str = "editor") -> tuple[dict[str, Any], str]:
    """Someone new: how presence names them, and their token."""
    user_id = next(_user_ids)
    return {"id": user_id, "name": name}, listener_token(name=name, user_id=user_id, role=role)


def present_notifier(launch: Launch, name: str, **env: Any) -> tuple[str, ServiceProcess]:
    """A notifier subscribed to the stream and bound to `contacts.presence`."""
    base, process = start_notifier(launch, name, **env)
    wait_until(lambda: metric(base, "notifier_presence_subscribed") == 1, message=f"{name} to bind to presence")
    return base, process


@pytest.fixture(scope="module")
def two(launch_for_module: Launch) -> tuple[str, str]:
    """Two notifier instances side by side, with the default settings."""
    return present_notifier(launch_for_module, "notifier-presence-1")[0], present_notifier(
        launch_for_module, "notifier-presence-2"
    )[0]


def presence(contact_id: int, state: str | None) -> dict[str, Any]:
    return {"type": "presence", "contact_id": contact_id, "state": state}


def users_on(
    client: LiveClient, contact_id: int, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Read on until a presence message for `contact_id` whose users satisfy `until`; returns those users."""
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while True:
        frame = client.receive(max(0.01, deadline - time.monotonic()))
        assert frame["type"] != "error", frame
        if frame["type"] == "presence":
            check_message("PresenceUpdate", frame)
        if frame["type"] == "presence" and frame["contact_id"] == contact_id and until(frame["users"]):
            return list(frame["users"])


def connected(base: str, token: str) -> LiveClient:
    client = LiveClient(base, token=token)
    client.hello()
    return client


def test_who_is_on_a_contact_reaches_clients_of_both_instances_and_goes_when_they_leave(two: tuple[str, str]) -> None:
    first, second = two
    contact_id = next(_contact_ids)
    ada, ada_token = person("Ada Lovelace")
    grace, grace_token = person("Grace Hopper")
    on_first, on_second = connected(first, ada_token), connected(second, grace_token)

    on_first.send(presence(contact_id, "viewing"))
    assert users_on(on_second, contact_id, bool) == [{**ada, "state": "viewing"}]
    on_second.send(presence(contact_id, "editing"))
    both = [{**ada, "state": "viewing"}, {**grace, "state": "editing"}]
    assert users_on(on_first, contact_id, lambda users: len(users) == 2) == both
    assert users_on(on_second, contact_id, lambda users: len(users) == 2) == both

    on_second.send(presence(contact_id, None))
    assert users_on(on_first, contact_id, lambda users: len(users) == 1) == [{**ada, "state": "viewing"}]
    on_first.close()  # the tab is closed
    assert users_on(on_second, contact_id, lambda users: users == []) == []
    on_second.close()


def test_a_client_that_connects_is_told_at_once_who_is_on_each_contact_on_either_instance(
    two: tuple[str, str],
) -> None:
    first, second = two
    contact_id = next(_contact_ids)
    ada, ada_token = person("Ada Lovelace")
    here = connected(first, ada_token)
    here.send(presence(contact_id, "editing"))
    watcher = connected(second, person("Watcher")[1])
    assert users_on(watcher, contact_id, bool) == [{**ada, "state": "editing"}]  # from the other instance

    late = LiveClient(second, token=person("Late")[1])
    late.hello()
    frame = late.receive()  # right after the hello, before any change
    assert frame == {"type": "presence", "contact_id": contact_id, "users": [{**ada, "state": "editing"}]}
    here.close()
    assert users_on(late, contact_id, lambda users: users == []) == []
    watcher.close()
    late.close()


def test_a_person_in_two_tabs_on_two_instances_is_shown_once_editing_if_either_tab_is(two: tuple[str, str]) -> None:
    first, second = two
    contact_id = next(_contact_ids)
    ada, token = person("Ada Lovelace")
    viewing, editing, watcher = connected(first, token), connected(second, token), connected(first, person("W")[1])
    viewing.send(presence(contact_id, "viewing"))
    editing.send(presence(contact_id, "editing"))
    assert users_on(watcher, contact_id, lambda users: users[0]["state"] == "editing") == [{**ada, "state": "editing"}]
    editing.close()
    assert users_on(watcher, contact_id, lambda users: users[0]["state"] == "viewing") == [{**ada, "state": "viewing"}]
    viewing.close()
    watcher.close()


def test_a_tab_that_goes_silent_is_gone_once_its_pings_go_unanswered(launch: Launch) -> None:
    base, _ = present_notifier(
        launch, "notifier-presence-silent", notifier_ping_interval_seconds=1, notifier_ping_timeout_seconds=1
    )
    contact_id = next(_contact_ids)
    ada, token = person("Ada Lovelace")
    silent = RawClient(base)
    assert silent.request(headers=handshake_headers(token=token)) == 101
    assert silent.answer() is not None  # the hello
    silent.send_frame(0x1, f'{{"type": "presence", "contact_id": {contact_id}, "state": "viewing"}}'.encode())
    watcher = connected(base, person("Watcher")[1])
    assert users_on(watcher, contact_id, bool) == [{**ada, "state": "viewing"}]

    went_silent = time.monotonic()  # from now on it reads nothing, so answers no ping, and sends no close
    assert users_on(watcher, contact_id, lambda users: users == [], timeout=10) == []
    assert time.monotonic() - went_silent < 10 * TIMEOUT_FACTOR
    silent.close()
    watcher.close()


def test_the_people_on_a_killed_notifier_are_gone_from_the_other_within_its_ttl(launch: Launch) -> None:
    ttl = 3.0
    doomed, process = present_notifier(launch, "notifier-presence-doomed", notifier_presence_ttl_seconds=ttl)
    survivor, _ = present_notifier(launch, "notifier-presence-survivor", notifier_presence_ttl_seconds=ttl)
    contact_id = next(_contact_ids)
    ada, token = person("Ada Lovelace")
    on_doomed, watcher = connected(doomed, token), connected(survivor, person("Watcher")[1])
    on_doomed.send(presence(contact_id, "editing"))
    assert users_on(watcher, contact_id, bool) == [{**ada, "state": "editing"}]
    time.sleep(ttl)  # past one TTL: still shown, for the doomed instance re-announces it
    assert metric(survivor, "notifier_presence_contacts") == 1

    assert process.process is not None
    os.killpg(process.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    assert users_on(watcher, contact_id, lambda users: users == [], timeout=ttl + 5) == []
    assert time.monotonic() - killed <= ttl + 1.5 * TIMEOUT_FACTOR  # the TTL and the 1 s expiry tick
    watcher.close()


def test_the_people_on_a_notifier_that_stops_are_gone_from_the_other_at_once_not_after_the_ttl(
    launch: Launch, two: tuple[str, str]
) -> None:
    stopping, process = present_notifier(launch, "notifier-presence-stopping")  # the default TTL: 20 s
    contact_id = next(_contact_ids)
    ada, token = person("Ada Lovelace")
    on_stopping, watcher = connected(stopping, token), connected(two[0], person("Watcher")[1])
    on_stopping.send(presence(contact_id, "viewing"))
    assert users_on(watcher, contact_id, bool) == [{**ada, "state": "viewing"}]
    stopped = time.monotonic()
    process.stop()  # SIGTERM: a deployment, a scale-in
    assert users_on(watcher, contact_id, lambda users: users == [], timeout=10) == []
    assert time.monotonic() - stopped < 10 * TIMEOUT_FACTOR
    watcher.close()


def bounded(launch: Launch, **limits: Any) -> str:
    return present_notifier(launch, "notifier-presence-bounded", **limits)[0]


def errors_after(client: LiveClient, messages: list[dict[str, Any]]) -> list[str]:
    """Send `messages`, then a resume marker; the error details answered before the marker's (an error too)."""
    for message in messages:
        client.send(message)
    client.send("end")
    details: list[str] = []
    while True:
        frame = client.receive()
        if frame["type"] == "error":
            if "not JSON" in frame["detail"]:
                return details
            details.append(frame["detail"])


def test_a_connection_on_more_contacts_than_allowed_gets_an_error_and_the_others_see_no_change(
    launch: Launch,
) -> None:
    notifier = bounded(launch, notifier_presence_max_contacts=2)
    first, second, third = (next(_contact_ids) for _ in range(3))
    _, token = person("Ada Lovelace")
    client, watcher = connected(notifier, token), connected(notifier, person("Watcher")[1])
    refused = errors_after(
        client, [presence(first, "viewing"), presence(second, "viewing"), presence(third, "viewing")]
    )
    assert refused == ["presence on at most 2 contacts at once: send state null for one first"]
    users_on(watcher, second, bool)
    assert errors_after(client, [presence(first, None), presence(third, "viewing")]) == []
    assert users_on(watcher, third, bool)[0]["state"] == "viewing"
    client.close()
    watcher.close()


def test_presence_messages_beyond_the_rate_get_an_error_and_change_nothing(launch: Launch) -> None:
    notifier = bounded(launch, notifier_presence_burst=4, notifier_presence_rate_per_second=0.01)
    contact_id = next(_contact_ids)
    ada, token = person("Ada Lovelace")
    client = connected(notifier, token)
    flood = [presence(contact_id, state) for state in ("viewing", "editing") * 10]
    refused = errors_after(client, flood)
    assert len(refused) == len(flood) - 4 and set(refused) == {
        "too many presence messages: at most 0.01 a second, 4 at once"
    }
    watcher = connected(notifier, person("Watcher")[1])
    assert watcher.receive() == {"type": "presence", "contact_id": contact_id, "users": [{**ada, "state": "editing"}]}
    client.close()
    watcher.close()


def test_a_viewer_may_be_viewing_but_not_editing(two: tuple[str, str]) -> None:
    contact_id = next(_contact_ids)
    _, token = person("Vera Viewer", role="viewer")
    client = connected(two[0], token)
    assert errors_after(client, [presence(contact_id, "editing"), presence(contact_id, "viewing")]) == [
        "a viewer cannot be editing a contact"
    ]
    watcher = connected(two[0], person("Watcher")[1])
    assert users_on(watcher, contact_id, bool)[0]["state"] == "viewing"
    client.close()
    watcher.close()


def test_announcements_on_the_exchange_are_transient_and_expire_and_garbage_there_is_dropped(
    two: tuple[str, str], infra: Infra
) -> None:
    """What another service or an operator sees on `contacts.presence`, and what a notifier does with junk."""
    connection = pika.BlockingConnection(pika.URLParameters(infra.amqp_url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, PRESENCE_EXCHANGE)
    contact_id = next(_contact_ids)
    ada, token = person("Ada Lovelace")
    client = connected(two[0], token)
    client.send(presence(contact_id, "viewing"))

    def announced() -> tuple[Any, Announcement] | None:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return None
        check_message("PresenceAnnouncement", json.loads(body))
        announcement = Announcement.model_validate_json(body)
        return (properties, announcement) if announcement.contacts[0].contact_id == contact_id else None

    properties, announcement = wait_until(announced, message="the announcement")
    assert properties.delivery_mode == 1 and properties.content_type == "application/json"
    assert int(properties.expiration) == 20_000 and announcement.ttl == 20
    assert [user.model_dump() for user in announcement.contacts[0].users] == [{**ada, "state": "viewing"}]
    exchange = channel.exchange_declare(PRESENCE_EXCHANGE, "fanout", passive=True)
    assert exchange.method.NAME == "Exchange.DeclareOk"

    rejected = metric(two[1], "notifier_presence_rejected_total")
    channel.basic_publish(PRESENCE_EXCHANGE, "", b"\x00 not an announcement")
    channel.basic_publish(PRESENCE_EXCHANGE, "", b'{"instance": "x", "ttl": 1e9, "contacts": []}')
    wait_until(lambda: metric(two[1], "notifier_presence_rejected_total") == rejected + 2, message="both dropped")
    watcher = connected(two[1], person("Watcher")[1])
    assert users_on(watcher, contact_id, bool) == [{**ada, "state": "viewing"}], "and it carries on"
    client.close()
    watcher.close()
    connection.close()


@pytest.fixture(autouse=True)
def nobody_left(two: tuple[str, str]) -> Iterator[None]:
    """Each test leaves no presence behind, so the next (and other modules' clients) start from none."""
    yield
    for base in two:
        wait_until(lambda base=base: metric(base, "notifier_presence_contacts") == 0, timeout=30, message="no one left")
