"""Importing CSV and vCard files (SPEC §11): each row one ordinary write, rejected rows named, nothing twice."""

import contextlib
import os
import signal
import uuid
from typing import Any

import psycopg
import pytest
import requests

from shared.broker import ensure_topology
from shared.migrate import upgrade
from tests.conftest import Launch
from tests.support.identity import create_user, signed_in, token_for
from tests.support.imports import finished, import_file, start_import_worker, upload
from tests.support.infra import Infra, provision
from tests.support.notifier import LiveClient, start_notifier
from tests.support.processes import ServiceProcess, wait_until
from tests.support.stack import Stack, start_command_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(launch_for_module: Launch) -> ServiceProcess:
    return start_import_worker(launch_for_module)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def contacts_with(infra: Infra, pattern: str) -> list[dict[str, Any]]:
    with psycopg.connect(infra.database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT id, first_name, last_name, email, phone, version FROM contacts WHERE email LIKE %s ORDER BY id",
            (pattern,),
        ).fetchall()


def test_a_csv_with_the_usual_column_names_a_bom_and_semicolons_becomes_contacts(
    command_api: str, worker: ServiceProcess, http: requests.Session, infra: Infra
) -> None:
    t = tag()
    content = (
        "\ufeffFirst Name;Last Name;E-mail Address;Mobile Phone;Company\r\n"
        f'Ada;"Love; lace";ada.{t}@example.com;+44 20 7946 0958;Analytical\r\n'
        f'"Grace ""Amazing""";"Hopper\r\nof the Navy";grace.{t}@example.com;+1 (555) 010-0100;\r\n'
        f"李;小龍;lee.{t}@example.com;+852 2345 6789;\r\n"
    )
    job = import_file(http, command_api, content.encode("utf-8"))
    assert job == {"id": job["id"], "status": "done", "rows": 3, "created": 3, "rejected": 0, "errors": []}
    rows = contacts_with(infra, f"%.{t}@example.com")
    assert [(r["first_name"], r["last_name"], r["version"]) for r in rows] == [
        ("Ada", "Love; lace", 1),
        ('Grace "Amazing"', "Hopper\r\nof the Navy", 1),
        ("李", "小龍", 1),
    ]


def test_rejected_rows_are_named_by_the_line_their_record_starts_on_field_and_reason(
    command_api: str, worker: ServiceProcess, http: requests.Session, infra: Infra
) -> None:
    t = tag()
    content = (
        "first_name,last_name,email,phone\n"
        f'Ada,"Two\nlines",ada.{t}@example.com,+44 20 7946 0958\n'  # lines 2-3
        f"Bob,,bob.{t}@example.com,+1 555 0100 100\n"  # 4: last_name missing
        f"Cy,Dee,not-an-email,12\n"  # 5: two bad fields
        f"Eve,Dup,ADA.{t}@example.com,+1 555 0100 101\n"  # 6: repeats line 2
        "\n"
        f"Fay,Ok,fay.{t}@example.com,+1 555 0100 102\n"  # 8
    )
    job = import_file(http, command_api, content)
    assert (job["status"], job["rows"], job["created"], job["rejected"]) == ("done", 5, 2, 3)
    assert [(e["line"], e["field"]) for e in job["errors"]] == [
        (4, "last_name"),
        (5, "email"),
        (5, "phone"),
        (6, "email"),
    ]
    assert job["errors"][3]["message"] == "already in use by line 2 of this file"
    assert [r["first_name"] for r in contacts_with(infra, f"%.{t}@example.com")] == ["Ada", "Fay"]


def test_the_same_file_again_creates_nothing_and_says_each_email_is_taken(
    command_api: str, worker: ServiceProcess, http: requests.Session, infra: Infra
) -> None:
    t = tag()
    content = "First Name,Last Name,Email,Phone\n" + "".join(
        f"N{i},L{i},n{i}.{t}@example.com,+1 555 010 {i:04d}\n" for i in range(30)
    )
    first = import_file(http, command_api, content)
    again = import_file(http, command_api, content)
    assert (first["created"], first["rejected"]) == (30, 0)
    assert (again["created"], again["rejected"]) == (0, 30)
    assert {e["message"] for e in again["errors"]} == {"already in use"}
    assert len(contacts_with(infra, f"%.{t}@example.com")) == 30


def test_vcards_3_and_4_with_folded_lines_and_a_broken_card_import_card_by_card(
    command_api: str, worker: ServiceProcess, http: requests.Session, infra: Infra
) -> None:
    t = tag()
    content = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lovelace;Ada;;;\r\nFN:Ada Lovelace\r\n"
        f"EMAIL;TYPE=INTERNET:ada.{t}@exam\r\n ple.com\r\nTEL;TYPE=CELL:+44 20 7946 0958\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Grace Brewster Hopper\r\n"
        f"EMAIL;PREF=2:other.{t}@example.com\r\nEMAIL;PREF=1:grace.{t}@example.com\r\n"
        "TEL;VALUE=uri:tel:+1-555-010-0100\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nN:Nobody\r\nEND:VCARD\r\n"  # line 16: no email nor phone
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Cut Short\r\n"  # line 20: never ends
    )
    job = import_file(http, command_api, content, "text/vcard")
    assert (job["rows"], job["created"], job["rejected"]) == (4, 2, 2)
    assert {(e["line"], e["field"]) for e in job["errors"]} >= {(16, "email"), (16, "phone"), (20, "record")}
    rows = contacts_with(infra, f"%.{t}@example.com")
    assert [(r["first_name"], r["last_name"], r["email"], r["phone"]) for r in rows] == [
        ("Ada", "Lovelace", f"ada.{t}@example.com", "+44 20 7946 0958"),
        ("Grace Brewster", "Hopper", f"grace.{t}@example.com", "+1-555-010-0100"),
    ]


def test_each_imported_contact_is_one_event_with_source_import_and_the_importer_as_actor(
    command_api: str, worker: ServiceProcess, http: requests.Session, infra: Infra, editor_user: dict[str, Any]
) -> None:
    t = tag()
    job = import_file(http, command_api, f"email,first_name,last_name,phone\nx.{t}@example.com,X,Y,+1 555 0100 200\n")
    assert job["created"] == 1
    with psycopg.connect(infra.database_url) as conn:
        events = conn.execute(
            "SELECT payload->>'source', payload->'actor' FROM outbox WHERE payload->'contact'->>'email' = %s",
            (f"x.{t}@example.com",),
        ).fetchall()
    assert events == [("import", {"id": editor_user["id"], "name": editor_user["name"]})]


def test_a_50000_row_file_is_imported_whole() -> None:
    """On a database and vhost of its own: its 50,000 events and history rows are no other test's backlog."""
    t = tag()
    content = "first_name,last_name,email,phone\n" + "".join(
        f"F{i},L{i},big{i}.{t}@example.com,+1 555 {i:07d}\n" for i in range(50_000)
    )
    with provision() as fresh:
        upgrade(fresh.database_url)
        ensure_topology(fresh.amqp_url)
        stack = Stack(fresh)
        try:
            command_api = start_command_api(stack.launch, create_reply_delay_seconds=0)
            start_import_worker(stack.launch)
            with requests.Session() as http:
                signed_in(http, token_for(create_user(fresh.database_url, "editor")))
                job = import_file(http, command_api, content, timeout_seconds=600)
        finally:
            stack.stop()
        assert (job["status"], job["rows"], job["created"], job["rejected"]) == ("done", 50_000, 50_000, 0)
        with psycopg.connect(fresh.database_url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM contacts WHERE email LIKE %s", (f"big%.{t}@example.com",)
            ).fetchone() == (50_000,)


@pytest.mark.parametrize(
    ("content", "media_type", "status"),
    [
        (b"first_name,email\nAda,a@example.com\n", "application/json", 415),
        (b"first_name,email\nAda,a@example.com\n", "text/csv; charset=latin-1", 415),
        (b"\xff\xfeA\x00d\x00a\x00", "text/csv", 422),  # UTF-16
        (b"colour,size\nred,9\n", "text/csv", 422),  # no column names a contact field
        (b"", "text/csv", 422),
        (b"FN:Ada\r\n", "text/vcard", 422),  # no card
        (b"\x00\x01\x02binary", "text/vcard", 422),
    ],
)
def test_a_file_that_is_not_one_we_read_is_refused_at_once(
    command_api: str, http: requests.Session, content: bytes, media_type: str, status: int
) -> None:
    reply = http.post(f"{command_api}/api/imports", data=content, headers={"Content-Type": media_type})
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"] == "application/problem+json"


def test_a_file_over_10_mb_is_413(command_api: str, http: requests.Session) -> None:
    content = b"first_name,last_name,email,phone\n" + b"x" * (10 * 1024 * 1024)
    reply = http.post(f"{command_api}/api/imports", data=content, headers={"Content-Type": "text/csv"})
    assert reply.status_code == 413, reply.text


def test_viewers_may_not_import_and_others_cannot_see_a_job(
    command_api: str, http: requests.Session, viewer_token: str
) -> None:
    job_url = upload(http, command_api, "email\nsomeone@example.com\n")
    with requests.Session() as viewer:
        viewer.headers["Authorization"] = f"Bearer {viewer_token}"
        refused = viewer.post(f"{command_api}/api/imports", data=b"email\n", headers={"Content-Type": "text/csv"})
        assert refused.status_code == 403
        assert viewer.get(job_url).status_code == 404
    assert http.get(job_url).status_code == 200


def test_a_job_survives_kill_9_of_its_worker_midway_with_nothing_doubled_or_lost(
    command_api: str, launch: Launch, http: requests.Session, infra: Infra
) -> None:
    t = tag()
    rows = 3_000
    content = "first_name,last_name,email,phone\n" + "".join(
        f"K{i},L{i},kill{i}.{t}@example.com,+1 555 {i:07d}\n" for i in range(rows)
    )
    doomed = start_import_worker(launch, "imports-doomed", import_batch_size=50)
    job_url = upload(http, command_api, content)
    job_id = job_url.rsplit("/", 1)[1]

    def state() -> tuple[int, int]:
        with psycopg.connect(infra.database_url) as conn:
            processed = conn.execute("SELECT processed FROM import_jobs WHERE id = %s", (job_id,)).fetchone()
            count = conn.execute(
                "SELECT count(*) FROM contacts WHERE email LIKE %s", (f"kill%.{t}@example.com",)
            ).fetchone()
        assert processed is not None and count is not None
        return int(processed[0]), int(count[0])

    wait_until(lambda: 0 < state()[0] < rows // 2, timeout=120, interval=0.02, message="the job to be under way")
    assert doomed.process is not None
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait()
    processed, count = state()
    assert 0 < processed < rows
    assert count == processed, "each batch commits with the job's count, or not at all"
    assert http.get(job_url).json()["status"] == "running"

    start_import_worker(launch, "imports-heir", import_batch_size=50)
    job = finished(http, job_url, timeout=300)
    assert (job["status"], job["rows"], job["created"], job["rejected"], job["errors"]) == ("done", rows, rows, 0, [])
    with psycopg.connect(infra.database_url) as conn:
        contacts = conn.execute(
            "SELECT count(*), count(DISTINCT lower(email)) FROM contacts WHERE email LIKE %s",
            (f"kill%.{t}@example.com",),
        ).fetchone()
        events = conn.execute(
            "SELECT count(*) FROM outbox WHERE payload->'contact'->>'email' LIKE %s", (f"kill%.{t}@example.com",)
        ).fetchone()
    assert contacts == (rows, rows)
    assert events == (rows,)


def test_the_progress_of_a_job_is_pushed_live_to_the_importers_connections_only(
    command_api: str, worker: ServiceProcess, launch: Launch, http: requests.Session, editor_token: str
) -> None:
    notifier, _ = start_notifier(launch)
    importer, other = LiveClient(notifier, token=editor_token), LiveClient(notifier)
    importer.hello()
    other.hello()
    t = tag()
    content = "first_name,last_name,email,phone\n" + "".join(
        f"P{i},L{i},push{i}.{t}@example.com,+1 555 {i:07d}\n" for i in range(1_200)
    )
    job_id = upload(http, command_api, content).rsplit("/", 1)[1]
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["status"] == "running":
        frame = importer.receive(timeout=60)
        if frame["type"] == "import":
            frames.append(frame)
    assert {frame["id"] for frame in frames} == {job_id}
    assert [frame["created"] for frame in frames][-3:] == [500, 1_000, 1_200]
    assert frames[-1] == {
        "type": "import", "id": job_id, "status": "done", "rows": 1_200, "created": 1_200, "rejected": 0
    }  # fmt: skip
    seen_by_other: list[str] = []
    with contextlib.suppress(TimeoutError):
        while True:
            seen_by_other.append(other.receive(timeout=1)["type"])
    assert "import" not in seen_by_other
