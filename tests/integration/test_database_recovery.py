"""SPEC §9: once PostgreSQL answers again, the first request succeeds and every service is ready at once.

Every pool is warmed first, so that it holds connections that the outage kills: those must never be
handed to a request. The outage is a cut of each service's own TCP proxy to the database, which kills
every connection and refuses new ones, as a restart does, without touching the machine's server.
"""

import concurrent.futures
import time
from collections.abc import Iterator

import psycopg
import pytest
import requests

from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import TIMEOUT_FACTOR
from tests.support.read_side import start_query_api
from tests.support.stack import Launch, start_command_api
from tests.support.tcp_proxy import TcpProxy, proxied

#: Longer than psycopg_pool's first reconnection delays (1 s, then 2 s, …), so that a pool that waits
#: out its backoff before trying again would still be waiting when the database is back.
OUTAGE_SECONDS = 4.0


@pytest.fixture
def database_proxy(infra: Infra) -> Iterator[tuple[TcpProxy, str]]:
    proxy, url = proxied(infra.database_url, 5432)
    yield proxy, url
    proxy.close()


def _warm(http: requests.Session, url: str, requests_at_once: int = 8) -> None:
    """Make the service's pools open several connections, by sending requests side by side."""
    with concurrent.futures.ThreadPoolExecutor(requests_at_once) as pool:
        for reply in pool.map(lambda _: http.get(url, timeout=10), range(4 * requests_at_once)):
            assert reply.status_code == 200, reply.text


def _through_outage(proxy: TcpProxy, database_url: str) -> None:
    """Cut the database off for OUTAGE_SECONDS, then return as soon as it answers through the proxy again."""
    proxy.cut()
    time.sleep(OUTAGE_SECONDS)
    proxy.restore()
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        conn.execute("SELECT 1")


def test_query_api_serves_the_first_read_after_the_database_returns(
    launch: Launch, database_proxy: tuple[TcpProxy, str], http: requests.Session
) -> None:
    proxy, database_url = database_proxy
    base = start_query_api(launch, "query-api-recovery", query_database_url=database_url, query_api_workers=1)
    _warm(http, f"{base}/api/contacts")

    _through_outage(proxy, database_url)

    first = http.get(f"{base}/api/contacts", timeout=10)
    assert first.status_code == 200, first.text
    ready = http.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


def test_command_api_takes_the_first_write_after_the_database_returns(
    launch: Launch, database_proxy: tuple[TcpProxy, str], http: requests.Session
) -> None:
    proxy, database_url = database_proxy
    base = start_command_api(
        launch, "command-api-recovery", database_url=database_url, command_api_workers=1, create_reply_delay_seconds=0
    )
    _warm(http, f"{base}/readyz")

    _through_outage(proxy, database_url)

    first = http.post(f"{base}/api/contacts", json=new_contact(), timeout=10 * TIMEOUT_FACTOR)
    assert first.status_code == 201, first.text
    ready = http.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
