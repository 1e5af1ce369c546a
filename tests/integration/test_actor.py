"""Who changed what (SPEC §8): a write's actor travels from its sender to the event, the history and the browser."""

import json
from collections.abc import Iterator

import pika
import psycopg
import pytest
from pika.exceptions import ChannelClosedByBroker

from shared.broker import COMMANDS_EXCHANGE
from tests.support.amqp import EventTap
from tests.support.commands import CommandBus, start_command_consumer
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.stack import Launch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def consumer(launch_for_module: Launch) -> ServiceProcess:
    return start_command_consumer(launch_for_module, create_reply_delay_seconds=0)


@pytest.fixture
def bus(infra: Infra, consumer: ServiceProcess) -> Iterator[CommandBus]:
    bus = CommandBus(infra.amqp_url, app_id="billing", user_id=infra.amqp_user)
    yield bus
    bus.close()


def test_a_bus_command_names_its_senders_login_as_the_actor(
    bus: CommandBus, infra: Infra, relay: ServiceProcess, events: EventTap
) -> None:
    created = bus.reply_to(bus.send({"command": "create", "data": new_contact()}, reply=True))
    assert created["ok"] is True, created
    [event] = events.of_contact(created["contact"]["id"], 1)
    assert (event.body["source"], event.body["actor"]) == ("billing", {"id": None, "name": infra.amqp_user})


def test_a_command_without_user_id_has_no_actor(
    infra: Infra, consumer: ServiceProcess, relay: ServiceProcess, events: EventTap
) -> None:
    anonymous = CommandBus(infra.amqp_url, app_id="billing")
    try:
        created = anonymous.reply_to(anonymous.send({"command": "create", "data": new_contact()}, reply=True))
    finally:
        anonymous.close()
    [event] = events.of_contact(created["contact"]["id"], 1)
    assert "actor" in event.body and event.body["actor"] is None


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
