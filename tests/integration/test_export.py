"""Exporting contacts (SPEC §11): the list or a search as CSV or vCard, streamed, and it imports back as it is."""

import threading
import uuid
from typing import Any

import psycopg
import pytest
import requests

from bench.measure import process_tree, rss_bytes
from shared.contact_files import read_csv
from tests.support.imports import import_file, start_import_worker
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port
from tests.support.read_side import start_query_api
from tests.support.stack import Launch

pytestmark = pytest.mark.integration

#: An export of 100,000 contacts may grow query-api by no more than this. Streamed it grew by about 2 MiB;
#: read whole (fetchall) it grew by 69 MiB, measured on this test's data.
EXPORT_RSS_BOUND = 40 * 1024 * 1024


@pytest.fixture(scope="module")
def query_api(launch_for_module: Launch) -> str:
    return start_query_api(launch_for_module)


@pytest.fixture(scope="module")
def worker(launch_for_module: Launch) -> ServiceProcess:
    return start_import_worker(launch_for_module)


def delete_all(infra: Infra, tag: str) -> None:
    with psycopg.connect(infra.database_url) as conn:
        conn.execute("UPDATE contacts SET deleted_at = now() WHERE email LIKE %s AND deleted_at IS NULL", (f"%{tag}%",))


def insert_contacts(infra: Infra, count: int, tag: str, last_name: str = "'Row ' || n") -> None:
    """`count` contacts straight into the table (no events: only reads are tested here), emails ending in tag."""
    with psycopg.connect(infra.database_url) as conn:
        conn.execute(
            f"""INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
                SELECT 'Sam', {last_name}, 'sam' || n || %s, '+1 555 ' || n, 1, now(), now()
                FROM generate_series(1, %s) AS n""",
            (f".{tag}@example.com", count),
        )


def contacts_of(infra: Infra, tag: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(infra.database_url) as conn:
        rows = conn.execute(
            """SELECT first_name, last_name, email, phone FROM contacts
               WHERE email LIKE %s AND deleted_at IS NULL ORDER BY email""",
            (f"%{tag}%",),
        ).fetchall()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(("export_format", "media_type"), [("csv", "text/csv"), ("vcard", "text/vcard")])
def test_an_export_imports_back_as_it_is(
    command_api: str,
    query_api: str,
    worker: ServiceProcess,
    http: requests.Session,
    infra: Infra,
    export_format: str,
    media_type: str,
) -> None:
    tag = uuid.uuid4().hex[:10]
    content = (
        "first_name,last_name,email,phone\n"
        f'"Zoë, ""Zed""",O\'Hara; Jr.,zoe.{tag}@example.com,+353 1 234 5678\n'
        f'"Two\nLines",Back\\slash,two.{tag}@example.com,(555) 010-0100\n'
        f"Владимир,Набоков,vn.{tag}@example.com,+7 495 123-45-67\n"
        f"{'Long' * 24},名前,long.{tag}@example.com,+81 3-1234-5678\n"
    )
    assert import_file(http, command_api, content)["created"] == 4
    before = contacts_of(infra, tag)

    exported = http.get(f"{query_api}/api/contacts/export", params={"format": export_format, "search": tag})
    assert exported.status_code == 200, exported.text
    assert exported.headers["Content-Type"] == f"{media_type}; charset=utf-8"
    if export_format == "csv":
        assert exported.text.splitlines()[0] == "first_name,last_name,email,phone"

    delete_all(infra, tag)
    job = import_file(http, command_api, exported.content, media_type)
    assert (job["rows"], job["created"], job["rejected"]) == (4, 4, 0), job
    assert contacts_of(infra, tag) == before


def test_an_export_holds_what_the_list_holds_for_the_same_search(
    query_api: str, http: requests.Session, infra: Infra
) -> None:
    tag = uuid.uuid4().hex[:10]
    insert_contacts(infra, 250, tag)
    listed: list[dict[str, Any]] = []
    params: dict[str, Any] = {"search": tag.upper(), "sort": "-email", "limit": 200}
    while True:
        page = http.get(f"{query_api}/api/contacts", params=params).json()
        listed += page["items"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    exported = http.get(f"{query_api}/api/contacts/export", params={"search": tag.upper(), "sort": "-email"})
    rows = [record.fields for record in read_csv(exported.text)]
    assert len(rows) == 250
    assert rows == [{field: item[field] for field in ("first_name", "last_name", "email", "phone")} for item in listed]


@pytest.mark.parametrize("params", [{"format": "xml"}, {"sort": "id"}, {"search": "\x01"}])
def test_a_bad_export_query_is_422(query_api: str, http: requests.Session, params: dict[str, str]) -> None:
    reply = http.get(f"{query_api}/api/contacts/export", params=params)
    assert reply.status_code == 422
    assert reply.headers["Content-Type"] == "application/problem+json"


def test_an_export_of_100000_contacts_is_streamed_in_bounded_memory(
    launch: Launch, http: requests.Session, infra: Infra
) -> None:
    tag = uuid.uuid4().hex[:10]
    insert_contacts(infra, 100_000, tag, last_name="'Contact ' || n || ' ' || repeat('x', 40)")
    try:
        export_in_bounded_memory(launch, http, tag)
    finally:  # out of the tests that follow in this database, whose search blocks they would swamp
        with psycopg.connect(infra.database_url) as conn:
            conn.execute("DELETE FROM contacts WHERE email LIKE %s", (f"%.{tag}@example.com",))
            conn.execute("ANALYZE contacts")


def export_in_bounded_memory(launch: Launch, http: requests.Session, tag: str) -> None:
    port = free_port()
    server = launch(
        "query-api-export",
        ["gunicorn", "-c", "services/query-api/gunicorn.conf.py"],
        port=port,
        query_api_port=port,
        query_api_workers=1,
    )
    assert server.process is not None
    pids = process_tree(server.process.pid)
    before = rss_bytes(pids)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, rss_bytes(pids))

    sampler = threading.Thread(target=sample)
    sampler.start()
    lines = 0
    try:
        with http.get(
            f"http://127.0.0.1:{port}/api/contacts/export",
            params={"search": tag},
            headers={"Connection": "close"},
            stream=True,
            timeout=300,
        ) as reply:
            assert reply.status_code == 200
            for line in reply.iter_lines(chunk_size=64 * 1024):
                lines += 1 if line else 0
    finally:
        done.set()
        sampler.join()
    assert lines == 100_001
    growth = peak - before
    print(f"query-api RSS {before / 2**20:.1f} MiB before, {peak / 2**20:.1f} MiB at most during the export")
    assert growth < EXPORT_RSS_BOUND, f"query-api grew by {growth / 2**20:.1f} MiB"
