"""A database and a RabbitMQ vhost of this test run's own, removed after it.

They live on the servers named by TEST_DATABASE_URL / TEST_AMQP_URL, or on containers started with
testcontainers when those are not set.
"""

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo


@dataclass(frozen=True)
class Infra:
    database_url: str
    amqp_url: str
    management_url: str
    vhost: str
    amqp_user: str
    amqp_password: str


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str, str]]:
    """(database URL, AMQP URL, management URL) of servers to create our own database and vhost on."""
    database, amqp = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_AMQP_URL")
    if database and amqp:
        host = urlsplit(amqp).hostname or "localhost"
        yield database, amqp, os.environ.get("TEST_AMQP_MANAGEMENT_URL", f"http://{host}:15672")
        return
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.rabbitmq import RabbitMqContainer

    with (
        PostgresContainer("postgres:15-alpine", driver=None) as postgres,
        RabbitMqContainer("rabbitmq:3.13-management-alpine") as rabbitmq,
    ):
        host = rabbitmq.get_container_host_ip()
        amqp_url = f"amqp://{rabbitmq.username}:{rabbitmq.password}@{host}:{rabbitmq.get_exposed_port(5672)}/%2F"
        yield postgres.get_connection_url(), amqp_url, f"http://{host}:{rabbitmq.get_exposed_port(15672)}"


def _maintenance(url: str) -> str:
    """The server's `postgres` database, where databases are created and dropped."""
    return make_conninfo(url, dbname="postgres")


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + path))


@contextlib.contextmanager
def provision() -> Iterator[Infra]:
    name = f"contacts_test_{uuid.uuid4().hex[:10]}"
    with servers() as (database_base, amqp_base, management_url):
        amqp = urlsplit(amqp_base)
        user, password = unquote(amqp.username or "guest"), unquote(amqp.password or "guest")
        management = requests.Session()
        management.auth = (user, password)
        _wait_for_management(management, management_url)
        with psycopg.connect(_maintenance(database_base), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        vhost_api = f"{management_url}/api/vhosts/{quote(name, safe='')}"
        management.put(vhost_api, json={}).raise_for_status()
        management.put(
            f"{management_url}/api/permissions/{quote(name, safe='')}/{quote(user, safe='')}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        try:
            yield Infra(
                database_url=_with_path(database_base, name),
                amqp_url=_with_path(amqp_base, quote(name, safe="")),
                management_url=management_url,
                vhost=name,
                amqp_user=user,
                amqp_password=password,
            )
        finally:
            management.delete(vhost_api)
            with psycopg.connect(_maintenance(database_base), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _wait_for_management(session: requests.Session, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            session.get(f"{url}/api/overview", timeout=5).raise_for_status()
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the RabbitMQ management API at {url} is not answering; "
                    "enable it with `rabbitmq-plugins enable rabbitmq_management`"
                ) from None
            time.sleep(0.5)
