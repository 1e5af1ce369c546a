"""Who changed what (SPEC §8): a write's actor travels from its sender to the event, the history and the browser."""

import json
from collections.abc import Iterator
from typing import Any

import pika
import psycopg
import pytest
import requests
from pika.exceptions import ChannelClosedByBroker

from shared.broker import COMMANDS_EXCHANGE
from tests.support.amqp import EventTap
from tests.support.asyncapi import check_message
from tests.support.commands import CommandBus, start_command_consumer
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.notifier import LiveClient, start_notifier
from tests.support.processes import ServiceProcess, wait_until
from tests.support.read_side import start_history_worker, start_query_api
from tests.support.stack import Launch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def read_side(launch_for_module: Launch, relay: ServiceProcess) -> str:
    """A history worker recording versions and the query-api serving them; the query-api's base URL."""
    start_history_worker(launch_for_module, "history-worker-for-actors")
    return start_query_api(launch_for_module, "query-api-for-actors")


@pytest.fixture(scope="module")
def notifier(launch_for_module: Launch) -> str:
    return start_notifier(launch_for_module, "notifier-for-actors")[0]


def recorded_actors(infra: Infra, contact_id: int, versions: int) -> list[Any]:
    """The actor of each version the history worker recorded, oldest first, once it has recorded `versions`."""

    def actors() -> list[Any] | None:
        with psycopg.connect(infra.database_url) as conn:
            rows = conn.execute(
                "SELECT actor FROM contact_versions WHERE contact_id = %s ORDER BY version", (contact_id,)
            ).fetchall()
        return [row[0] for row in rows] if len(rows) == versions else None

    return list(wait_until(actors, message=f"{versions} versions of contact {contact_id} recorded"))


def test_an_http_write_names_the_signed_in_user_in_its_event_history_and_live_frame(
    command_api: str,
    http: requests.Session,
    editor_user: dict[str, Any],
    events: EventTap,
    infra: Infra,
    read_side: str,
    notifier: str,
) -> None:
    watching = LiveClient(notifier)
    watching.hello()
    contact = http.post(f"{command_api}/api/contacts", json=new_contact(), timeout=30).json()
    assert http.patch(f"{command_api}/api/contacts/{contact['id']}", json={"first_name": "Augusta"}).status_code == 200
    actor = {"id": editor_user["id"], "name": editor_user["name"]}

    published = events.of_contact(contact["id"], 2)
    assert [event.body["actor"] for event in published] == [actor, actor]
    assert list(published[0].body).index("actor") == list(published[0].body).index("source") + 1
    check_message("ContactUpdated", published[1].body, published[1].properties.headers)
    frames = watching.receive_until(published[-1].body["seq"])
    assert [frame for frame in frames if frame.get("contact_id") == contact["id"]] == [e.body for e in published]
    watching.close()

    assert recorded_actors(infra, contact["id"], 2) == [actor, actor]
    history = http.get(f"{read_side}/api/contacts/{contact['id']}/history", timeout=10)
    assert history.status_code == 200, history.text
    assert [(item["version"], item["source"], item["actor"]) for item in history.json()["items"]] == [
        (2, "api", actor),
        (1, "api", actor),
    ]


@pytest.fixture(scope="module")
def consumer(launch_for_module: Launch) -> ServiceProcess:
    return start_command_consumer(launch_for_module, create_reply_delay_seconds=0)


@pytest.fixture
def bus(infra: Infra, consumer: ServiceProcess) -> Iterator[CommandBus]:
    bus = CommandBus(infra.amqp_url, app_id="billing", user_id=infra.amqp_user)
    yield bus
    bus.close()


def test_a_bus_command_names_its_senders_login_as_the_actor(
    bus: CommandBus, infra: Infra, events: EventTap, read_side: str, http: requests.Session
) -> None:
    created = bus.reply_to(bus.send({"command": "create", "data": new_contact()}, reply=True))
    assert created["ok"] is True, created
    login = {"id": None, "name": infra.amqp_user}
    [event] = events.of_contact(created["contact"]["id"], 1)
    assert (event.body["source"], event.body["actor"]) == ("billing", login)
    check_message("ContactCreated", event.body, event.properties.headers)
    assert recorded_actors(infra, created["contact"]["id"], 1) == [login]
    [item] = http.get(f"{read_side}/api/contacts/{created['contact']['id']}/history", timeout=10).json()["items"]
    assert (item["source"], item["actor"]) == ("billing", login)


def test_a_command_without_user_id_has_no_actor(
    infra: Infra, consumer: ServiceProcess, relay: ServiceProcess, events: EventTap, read_side: str
) -> None:
    anonymous = CommandBus(infra.amqp_url, app_id="billing")
    try:
        created = anonymous.reply_to(anonymous.send({"command": "create", "data": new_contact()}, reply=True))
    finally:
        anonymous.close()
    [event] = events.of_contact(created["contact"]["id"], 1)
    assert "actor" in event.body and event.body["actor"] is None
    assert recorded_actors(infra, created["contact"]["id"], 1) == [None]


def test_rabbitmq_refuses_a_user_id_that_is_not_the_senders_login(bus: CommandBus, infra: Infra) -> None:
    """The broker closes the publisher's channel; the message never reaches the queue, so no contact is made."""
    forged = new_contact()
    connection = pika.BlockingConnection(pika.URLParameters(infra.amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(content_type="application/json", user_id=f"not-{infra.amqp_user}")
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.basic_publish(COMMANDS_EXCHANGE, "", json.dumps({"command": "create", "data": forged}), properties)
        assert refused.value.reply_code == 406 and "user_id" in refused.value.reply_text
    finally:
        connection.close()
    # A command sent after it is answered once the consumer has taken everything queued before it.
    assert bus.reply_to(bus.send({"command": "create", "data": new_contact()}, reply=True))["ok"] is True
    with psycopg.connect(infra.database_url) as conn:
        assert conn.execute("SELECT 1 FROM contacts WHERE email = %s", (forged["email"],)).fetchone() is None
    assert not [body for _properties, body in bus.dead_letters if forged["email"].encode() in body]
