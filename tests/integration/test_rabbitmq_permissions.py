"""RabbitMQ least privilege (SPEC §8): the definitions compose's broker loads, rendered by its start script
(deploy/rabbitmq/start.sh: the passwords hashed as the broker will check them), are imported into a database and
vhost of this module's own, each user renamed to one of its own and removed afterwards (the machine's users are
never touched). No topology is declared beforehand: the file's is the one the services find.

Each service runs as its user and does its job, end to end: a command over the bus is applied and answered
(consumer), relayed (relay), recorded (history worker) and pushed to a WebSocket client (notifier), and presence is
shared on its exchange (notifier). No user can
publish, read or reconfigure where it must not; `guest` can, so each refusal is the permission's.
"""

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pika
import psycopg
import pytest
import requests
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from shared.broker import COMMANDS_EXCHANGE, COMMANDS_QUEUE, EVENTS_EXCHANGE, HISTORY_QUEUE, PRESENCE_EXCHANGE
from shared.migrate import upgrade
from tests.support.commands import CommandBus, start_command_consumer
from tests.support.data import new_contact
from tests.support.infra import Infra, provision
from tests.support.notifier import LiveClient, start_notifier
from tests.support.processes import ROOT, TIMEOUT_FACTOR, wait_until
from tests.support.read_side import start_history_worker
from tests.support.stack import Stack, start_relay

DEPLOY = ROOT / "deploy" / "rabbitmq"
#: The users of the file, by the part of their password's variable name (RABBITMQ_<PART>_PASSWORD).
USERS = {
    "OPERATOR": "operator",
    "RELAY": "contacts-relay",
    "COMMANDS": "contacts-commands",
    "HISTORY": "contacts-history",
    "NOTIFIER": "contacts-notifier",
}


@pytest.fixture(scope="module")
def own() -> Iterator[Infra]:
    """A database and an empty vhost (guest may do anything in it, as in every test vhost)."""
    with provision() as provisioned:
        upgrade(provisioned.database_url)
        yield provisioned


def render_definitions(tmp: Path, passwords: dict[str, str]) -> dict[str, Any]:
    """The definitions as the broker's container writes them at its start."""
    out = tmp / "definitions.json"
    env = {**os.environ, "CONTACTS_DEFINITIONS": str(out)}
    env.update({f"RABBITMQ_{part}_PASSWORD": password for part, password in passwords.items()})
    subprocess.run(["sh", str(DEPLOY / "start.sh"), "true"], env=env, check=True, timeout=60 * TIMEOUT_FACTOR)
    return dict(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def logins(own: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The AMQP URL of each of the file's users (by its name there) in `own`'s vhost."""
    passwords = {part: secrets.token_urlsafe(18) for part in USERS}
    definitions = render_definitions(tmp_path_factory.mktemp("rabbitmq"), passwords)
    renamed = {user: f"{own.vhost}-{user}" for user in USERS.values()}
    assert {user["name"] for user in definitions["users"]} == set(renamed)
    for user in definitions["users"]:
        user["name"] = renamed[user["name"]]
    for permission in definitions["permissions"]:
        permission.update(user=renamed[permission["user"]], vhost=own.vhost)
    for resource in (*definitions["exchanges"], *definitions["queues"], *definitions["bindings"]):
        resource["vhost"] = own.vhost
    del definitions["vhosts"]  # `own`'s exists

    management = requests.Session()
    management.auth = (own.amqp_user, own.amqp_password)
    try:
        management.post(f"{own.management_url}/api/definitions", json=definitions, timeout=30).raise_for_status()
        broker = urlsplit(own.amqp_url)
        yield {
            user: f"amqp://{quote(renamed[user])}:{quote(passwords[part])}@{broker.hostname}:{broker.port}/"
            f"{quote(own.vhost, safe='')}"
            for part, user in USERS.items()
        }
    finally:
        for name in renamed.values():
            management.delete(f"{own.management_url}/api/users/{quote(name, safe='')}", timeout=10)


@pytest.fixture(scope="module")
def services(own: Infra, logins: dict[str, str]) -> Iterator[str]:
    """Every AMQP service of ours, each as its own user; returns the notifier's base URL."""
    stack = Stack(own)
    try:
        start_command_consumer(stack.launch, amqp_url=logins["contacts-commands"], create_reply_delay_seconds=0)
        start_relay(stack.launch, amqp_url=logins["contacts-relay"])
        start_history_worker(stack.launch, amqp_url=logins["contacts-history"])
        notifier, _ = start_notifier(stack.launch, amqp_url=logins["contacts-notifier"])
        yield notifier
    finally:
        stack.stop()


def test_each_service_does_its_job_as_its_own_user(own: Infra, services: str) -> None:
    client = LiveClient(services)
    client.hello()
    bus = CommandBus(own.amqp_url, app_id="permissions-test")
    try:
        created = bus.reply_to(bus.send({"command": "create", "data": new_contact()}, reply=True))
        assert created["ok"] is True, created  # applied and answered by the consumer
        contact_id = created["contact"]["id"]
        pushed = client.receive_until(1)[-1]  # relayed to contacts.events, pushed by the notifier
        assert pushed["contact_id"] == contact_id, pushed

        def recorded() -> int:
            with psycopg.connect(own.database_url) as conn:
                row = conn.execute("SELECT count(*) FROM contact_versions WHERE contact_id = %s", (contact_id,))
                return int((row.fetchone() or (0,))[0])

        wait_until(lambda: recorded() == 1, timeout=10, message="the history worker records the version")
    finally:
        bus.close()
        client.close()


def test_the_notifier_shares_presence_on_its_exchange_as_its_own_user(own: Infra, services: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(own.amqp_url))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, PRESENCE_EXCHANGE)
        client = LiveClient(services)
        client.hello()
        client.send({"type": "presence", "contact_id": 42, "state": "viewing"})

        def announced() -> dict[str, Any] | None:
            _method, _properties, body = channel.basic_get(queue, auto_ack=True)
            return dict(json.loads(body)) if body else None

        announcement = wait_until(announced, timeout=10, message="the notifier's announcement")
        assert announcement["contacts"][0]["contact_id"] == 42, announcement
        client.close()
    finally:
        connection.close()


def refused(url: str, action: Callable[[BlockingChannel], Any]) -> bool:
    """Whether the broker refuses `action` on a fresh channel of `url` with ACCESS_REFUSED (403), rather than
    doing it or refusing it for another reason."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            action(channel)
        except ChannelClosedByBroker as closed:
            return bool(closed.reply_code == 403)
        return False
    finally:
        connection.close()


def publish(exchange: str) -> Callable[[BlockingChannel], Any]:
    # A routing key no queue of contacts.events is bound by: what guest publishes there reaches no one.
    return lambda channel: channel.basic_publish(exchange, "permissions.test", b"{}", mandatory=False)


def consume(queue: str) -> Callable[[BlockingChannel], Any]:
    return lambda channel: channel.basic_get(queue)


#: (user, what it must not do): no service publishes where another's messages go or reads another's queue.
FORBIDDEN = [
    ("contacts-notifier", publish(EVENTS_EXCHANGE)),
    ("contacts-notifier", publish(COMMANDS_EXCHANGE)),
    ("contacts-notifier", consume(HISTORY_QUEUE)),
    ("contacts-history", publish(COMMANDS_EXCHANGE)),
    ("contacts-history", publish(EVENTS_EXCHANGE)),
    ("contacts-history", consume(COMMANDS_QUEUE)),
    ("contacts-relay", publish(COMMANDS_EXCHANGE)),
    ("contacts-relay", consume(COMMANDS_QUEUE)),
    ("contacts-commands", publish(EVENTS_EXCHANGE)),
    ("contacts-commands", consume(HISTORY_QUEUE)),
    ("contacts-relay", publish(PRESENCE_EXCHANGE)),
    ("contacts-commands", publish(PRESENCE_EXCHANGE)),
    ("contacts-history", publish(PRESENCE_EXCHANGE)),
]


@pytest.mark.parametrize(("user", "action"), FORBIDDEN, ids=[f"{user}-{n}" for n, (user, _) in enumerate(FORBIDDEN)])
def test_a_service_user_cannot_publish_or_read_where_it_must_not(
    own: Infra, logins: dict[str, str], services: str, user: str, action: Callable[[BlockingChannel], Any]
) -> None:
    assert not refused(own.amqp_url, action), "guest may: the resource exists, so a refusal is the permission's"
    assert refused(logins[user], action)


@pytest.mark.parametrize(
    ("user", "queue"),
    [("contacts-notifier", HISTORY_QUEUE), ("contacts-history", COMMANDS_QUEUE), ("contacts-commands", HISTORY_QUEUE)],
)
def test_a_service_user_cannot_delete_another_services_queue(
    own: Infra, logins: dict[str, str], services: str, user: str, queue: str
) -> None:
    assert refused(logins[user], lambda channel: channel.queue_delete(queue))
    assert not refused(own.amqp_url, lambda channel: channel.queue_declare(queue, passive=True)), "still there"


def test_the_operator_may_do_anything_and_use_the_console(own: Infra, logins: dict[str, str]) -> None:
    assert not refused(logins["operator"], publish(COMMANDS_EXCHANGE))
    operator = urlsplit(logins["operator"])
    console = requests.get(
        f"{own.management_url}/api/whoami", auth=(operator.username or "", operator.password or ""), timeout=10
    )
    assert console.status_code == 200
    assert console.json()["tags"] in (["administrator"], "administrator")


def test_the_service_users_cannot_log_in_to_the_console(own: Infra, logins: dict[str, str]) -> None:
    for user in USERS.values():
        if user != "operator":
            url = urlsplit(logins[user])
            answer = requests.get(
                f"{own.management_url}/api/whoami", auth=(url.username or "", url.password or ""), timeout=10
            )
            assert answer.status_code == 401, user
