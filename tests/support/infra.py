"""A database and a RabbitMQ vhost of this test run's own, removed after it.

They live on the servers named by TEST_DATABASE_URL / TEST_AMQP_URL, or on containers started with
testcontainers when those are not set (images: POSTGRES_IMAGE, RABBITMQ_IMAGE below). Each carries its run's host
and pid (the database's comment, the vhost's description), so that a later run on the same host removes what a
killed run left; runs share those servers, so a database or vhost whose run is alive, or on another host, is
never touched.
"""

import contextlib
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo

PREFIX = "contacts_test_"
#: The images testcontainers runs when TEST_DATABASE_URL / TEST_AMQP_URL are unset (TEST_POSTGRES_IMAGE and
#: TEST_RABBITMQ_IMAGE name others): the stand-ins made of Debian's packages by deploy/local-images/build.sh,
#: which `make test` builds, for they need no registry; the official postgres:15 and rabbitmq:3.13-management
#: serve as well.
POSTGRES_IMAGE = "contacts-live/postgres:15"
RABBITMQ_IMAGE = "contacts-live/rabbitmq:3.10-management"


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
    # testcontainers' reaper (Ryuk) is one more image to pull; the `with` below removes both containers itself.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.rabbitmq import RabbitMqContainer

    with (
        PostgresContainer(os.environ.get("TEST_POSTGRES_IMAGE", POSTGRES_IMAGE), driver=None) as postgres,
        RabbitMqContainer(os.environ.get("TEST_RABBITMQ_IMAGE", RABBITMQ_IMAGE)).with_exposed_ports(15672) as rabbitmq,
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


def run_label(pid: int | None = None) -> str:
    """Who made a database or vhost: this host and the test run's pid, as JSON."""
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid() if pid is None else pid})


def run_is_gone(label: str | None) -> bool:
    """Whether `label` names a run of this host whose process has ended; unlabelled or foreign: never."""
    try:
        run = json.loads(label or "")
        if run["host"] != socket.gethostname():
            return False
        pid = int(run["pid"])
        if pid <= 0:
            return False
        os.kill(pid, 0)  # a reused pid keeps the leftover a while longer: the safe side
    except ProcessLookupError:
        return True
    except (ValueError, TypeError, KeyError, PermissionError, OverflowError):
        return False
    return False


def attempt_each(*cleanups: Callable[[], object]) -> list[Exception]:
    """Run every clean-up, even after one failed; returns the failures."""
    failures: list[Exception] = []
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception as failure:  # every clean-up is tried; the caller reports the failures
            failures.append(failure)
    return failures


class Provisioner:
    """Creates, drops and sweeps the databases and vhosts named `contacts_test_*` on the two servers."""

    def __init__(self, database_url: str, management_url: str, user: str, password: str) -> None:
        self._admin_url = _maintenance(database_url)
        self._management_url = management_url
        self._management = requests.Session()
        self._management.auth = (user, password)
        self._user = user

    def wait_for_management(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._management.get(f"{self._management_url}/api/overview", timeout=5).raise_for_status()
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the RabbitMQ management API at {self._management_url} is not answering; "
                        "enable it with `rabbitmq-plugins enable rabbitmq_management`"
                    ) from None
                time.sleep(0.5)

    def create(self, name: str, label: str) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(label)))
        self._management.put(self._vhost_api(name), json={"description": label}, timeout=10).raise_for_status()
        self._management.put(
            f"{self._management_url}/api/permissions/{quote(name, safe='')}/{quote(self._user, safe='')}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            timeout=10,
        ).raise_for_status()

    def drop(self, name: str) -> None:
        """Remove the vhost and the database, each even if the other cannot be removed."""
        failures = attempt_each(partial(self.delete_vhost, name), partial(self.drop_database, name))
        if failures:
            raise failures[0]

    def delete_vhost(self, name: str) -> None:
        reply = self._management.delete(self._vhost_api(name), timeout=30)
        if reply.status_code != 404:
            reply.raise_for_status()

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def databases(self) -> dict[str, str | None]:
        """Every `contacts_test_*` database, with its label."""
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE starts_with(datname, %s)",
                (PREFIX,),
            ).fetchall()
        return dict(rows)

    def vhosts(self) -> dict[str, str | None]:
        """Every `contacts_test_*` vhost, with its label."""
        reply = self._management.get(f"{self._management_url}/api/vhosts", timeout=10)
        reply.raise_for_status()
        return {vhost["name"]: vhost.get("description") for vhost in reply.json() if vhost["name"].startswith(PREFIX)}

    def sweep(self) -> list[str]:
        """Remove what ended runs of this host left behind; returns their names. A failure warns, the run goes on."""
        left = [partial(self.drop_database, name) for name, label in self.databases().items() if run_is_gone(label)]
        left += [partial(self.delete_vhost, name) for name, label in self.vhosts().items() if run_is_gone(label)]
        for failure in attempt_each(*left):
            warnings.warn(f"a leftover of an ended test run was not removed: {failure}", stacklevel=2)
        return [remove.args[0] for remove in left]

    def _vhost_api(self, name: str) -> str:
        return f"{self._management_url}/api/vhosts/{quote(name, safe='')}"


@contextlib.contextmanager
def provision() -> Iterator[Infra]:
    name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    with servers() as (database_base, amqp_base, management_url):
        amqp = urlsplit(amqp_base)
        user, password = unquote(amqp.username or "guest"), unquote(amqp.password or "guest")
        provisioner = Provisioner(database_base, management_url, user, password)
        provisioner.wait_for_management()
        provisioner.sweep()
        try:
            provisioner.create(name, run_label())
            yield Infra(
                database_url=_with_path(database_base, name),
                amqp_url=_with_path(amqp_base, quote(name, safe="")),
                management_url=management_url,
                vhost=name,
                amqp_user=user,
                amqp_password=password,
            )
        finally:
            provisioner.drop(name)
