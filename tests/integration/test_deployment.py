"""What docker-compose.yml relies on that runs without Docker: its health checks and the read-only login."""

import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from psycopg import sql

from tests.conftest import Launch
from tests.support.commands import start_command_consumer
from tests.support.compose import SERVICES, probe_url
from tests.support.infra import Infra
from tests.support.notifier import start_notifier
from tests.support.processes import ROOT, ServiceProcess, free_port, wait_until
from tests.support.read_side import start_history_worker, start_query_api

pytestmark = pytest.mark.integration


def run_health_check(service: str, port: int) -> int:
    """Run the service's compose health check as Docker would, against the local process listening on `port`."""
    test = SERVICES[service]["healthcheck"]["test"]
    url = urlsplit(probe_url(service))
    local = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))
    assert test[1] == "python"
    return subprocess.run([sys.executable, *test[2:-1], local], timeout=10, check=False).returncode


def port_of(process: ServiceProcess) -> int:
    assert process.health_url is not None
    return urlsplit(process.health_url).port or 0


def test_each_services_health_check_passes_against_the_running_service_and_fails_when_it_is_down(
    command_api: str, relay: ServiceProcess, launch: Launch
) -> None:
    ports = {
        "command-api": urlsplit(command_api).port,
        "relay": port_of(relay),
        "commands": port_of(start_command_consumer(launch)),
        "query-api": urlsplit(start_query_api(launch)).port,
        "history-worker": urlsplit(start_history_worker(launch)[1]).port,
        "notifier": urlsplit(start_notifier(launch)[0]).port,
    }
    for service, port in ports.items():
        assert port is not None
        assert run_health_check(service, port) == 0, service
    assert run_health_check("command-api", free_port()) != 0, "nothing listening: unhealthy"


@pytest.fixture
def reader_role(infra: Infra) -> Iterator[str]:
    """A NOLOGIN role of this test's own, granted what the migration grants contacts_reader."""
    role = f"contacts_reader_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(infra.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT SELECT ON contacts, contact_versions TO {}").format(sql.Identifier(role)))
        # the revoked sessions, which query-api loads to refuse their tokens (migration 0005)
        admin.execute(
            sql.SQL("GRANT SELECT (id, expires_at, revoked_at) ON sessions TO {}").format(sql.Identifier(role))
        )
    yield role
    with psycopg.connect(infra.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_migrate_lets_the_read_only_role_log_in_and_query_api_reads_as_it_but_cannot_write(
    infra: Infra, launch: Launch, reader_role: str, http: requests.Session
) -> None:
    password = uuid.uuid4().hex
    parts = urlsplit(infra.database_url)
    as_reader = urlunsplit(parts._replace(netloc=f"{reader_role}:{password}@{parts.hostname}:{parts.port or 5432}"))
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(as_reader).close()

    # What the compose file's one-shot `migrate` service runs, with the settings it gives it.
    env = {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": infra.database_url,
        "QUERY_DATABASE_ROLE": reader_role,
        "QUERY_DATABASE_PASSWORD": password,
    }
    subprocess.run([sys.executable, "-m", "shared.migrate"], cwd=ROOT, env=env, timeout=60, check=True)

    # Every process here also gets the owner's DATABASE_URL: query-api must log in with QUERY_DATABASE_URL.
    name = f"query-api-{reader_role}"
    base = start_query_api(launch, query_database_url=as_reader, query_database_role=reader_role, pgappname=name)
    assert http.get(f"{base}/api/contacts", timeout=10).status_code == 200
    assert wait_until(lambda: logins_of(infra, name), message="query-api's connections") == {reader_role}
    with psycopg.connect(as_reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM contacts")


def logins_of(infra: Infra, application_name: str) -> set[str]:
    """The roles that the connections of one application (libpq's PGAPPNAME) logged in as."""
    with psycopg.connect(infra.database_url) as conn:
        rows = conn.execute(
            """SELECT DISTINCT usename FROM pg_stat_activity
               WHERE application_name = %s AND datname = current_database()""",
            (application_name,),
        ).fetchall()
    return {usename for (usename,) in rows}
