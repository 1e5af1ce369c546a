"""query-api on real PostgreSQL, fed by the real write path and history worker."""

import base64
import uuid
from typing import Any

import jsonschema
import psycopg
import pytest
import requests
from query_api.params import SORTS

from shared.db import session_options
from shared.settings import Settings
from tests.conftest import Launch
from tests.support.data import new_contact
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, wait_until
from tests.support.read_side import start_history_worker, start_query_api
from tests.support.tcp_proxy import proxied

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def query_api(launch_for_session: Launch) -> str:
    return start_query_api(launch_for_session)


@pytest.fixture(scope="module")
def history_worker(launch_for_session: Launch, relay: ServiceProcess) -> str:
    return start_history_worker(launch_for_session, name="history-worker-for-query")[1]


def create(http: requests.Session, command_api: str, **fields: Any) -> dict[str, Any]:
    reply = http.post(f"{command_api}/api/contacts", json=new_contact(**fields), timeout=30)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def search(http: requests.Session, query_api: str, term: str, **params: Any) -> list[dict[str, Any]]:
    reply = http.get(f"{query_api}/api/contacts", params={"search": term, **params}, timeout=10)
    assert reply.status_code == 200, reply.text
    return list(reply.json()["items"])


def test_history_is_served_newest_first_and_still_after_the_contact_is_deleted(
    command_api: str, history_worker: str, query_api: str, http: requests.Session
) -> None:
    contact = create(http, command_api)
    url = f"{command_api}/api/contacts/{contact['id']}"
    assert http.patch(url, json={"first_name": "Augusta"}, timeout=10).status_code == 200
    assert http.delete(url, timeout=10).status_code == 204

    history_url = f"{query_api}/api/contacts/{contact['id']}/history"
    wait_until(lambda: len(http.get(history_url, timeout=5).json()["items"]) == 3, message="three versions")
    assert http.get(f"{query_api}/api/contacts/{contact['id']}", timeout=5).status_code == 404
    first = http.get(history_url, params={"limit": 2}, timeout=5).json()
    second = http.get(history_url, params={"limit": 2, "cursor": first["next_cursor"]}, timeout=5).json()
    items = first["items"] + second["items"]
    assert [(item["version"], item["op"]) for item in items] == [(3, "deleted"), (2, "updated"), (1, "created")]
    assert second["next_cursor"] is None
    assert items[0]["contact"] is None and items[1]["changed_fields"] == ["first_name"]
    assert items[1]["contact"]["first_name"] == "Augusta" and items[2]["contact"] == contact
    assert list(items[2]["contact"]) == list(contact)  # a snapshot's fields in the order a contact has them
    assert {item["source"] for item in items} == {"api"}


def test_one_contact_carries_its_version_as_etag_and_unknown_ids_are_404(
    command_api: str, query_api: str, http: requests.Session
) -> None:
    contact = create(http, command_api)
    reply = http.get(f"{query_api}/api/contacts/{contact['id']}", timeout=5)
    assert reply.status_code == 200 and reply.json() == contact and reply.headers["ETag"] == '"1"'
    again = http.get(f"{query_api}/api/contacts/{contact['id']}", headers={"If-None-Match": '"1"'}, timeout=5)
    assert again.status_code == 304
    for path in ("/api/contacts/999999999", "/api/contacts/999999999/history", f"/api/contacts/{2**64}"):
        missing = http.get(f"{query_api}{path}", timeout=5)
        assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"


def test_a_list_shows_each_contact_as_the_write_path_and_the_contact_endpoint_write_it(
    command_api: str, query_api: str, http: requests.Session, infra: Infra
) -> None:
    """To the character: times to the second when they have no microseconds, quotes, backslashes, non-ASCII."""
    tag = uuid.uuid4().hex[:10]
    written = create(http, command_api, first_name=tag, last_name='Ærø "quoted" \\ 名前')
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        row = conn.execute(
            """INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
               VALUES (%s, 'Whole', %s, '+1 555 0101', 4, '2026-01-02 03:04:05+00', '2026-01-02 03:04:05.000007+00')
               RETURNING id""",
            (tag, f"{tag}@example.org"),
        ).fetchone()
    assert row is not None
    listed = search(http, query_api, tag, sort="last_name")
    singles = [http.get(f"{query_api}/api/contacts/{item['id']}", timeout=5).json() for item in listed]
    assert listed == singles and listed[0] == written  # Æ sorts with the As, before Whole
    assert (listed[1]["created_at"], listed[1]["updated_at"]) == ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000007Z")


def test_every_reply_fits_its_schema_in_the_openapi_document_with_no_field_beyond_it(
    command_api: str, history_worker: str, query_api: str, http: requests.Session
) -> None:
    """The views build replies from rows, not from the pydantic models the document is made of: this keeps
    the two alike (and no row's helper column, such as a page's sort key, leaks into a reply)."""
    document = http.get(f"{query_api}/openapi.json", timeout=5).json()
    schemas = document["components"]["schemas"]
    for schema in schemas.values():
        if "properties" in schema:
            schema["additionalProperties"] = False
    tag = uuid.uuid4().hex[:10]
    contact = create(http, command_api, first_name=tag)
    create(http, command_api, first_name=tag)
    url = f"{command_api}/api/contacts/{contact['id']}"
    assert http.patch(url, json={"last_name": "Byron"}, timeout=10).status_code == 200
    assert http.delete(url, timeout=10).status_code == 204
    history = f"{query_api}/api/contacts/{contact['id']}/history"
    wait_until(lambda: len(http.get(history, timeout=5).json()["items"]) == 3, message="three versions")
    survivor = search(http, query_api, tag)[0]

    replies = {
        "ContactPage": [f"/api/contacts?search={tag}", f"/api/contacts?search={tag}&limit=1", "/api/contacts?limit=3"],
        "Contact": [f"/api/contacts/{survivor['id']}"],
        "HistoryPage": [f"/api/contacts/{contact['id']}/history", f"/api/contacts/{contact['id']}/history?limit=1"],
    }
    for name, paths in replies.items():
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}},
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        for path in paths:
            reply = http.get(f"{query_api}{path}", timeout=5)
            assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json", path
            validator.validate(reply.json())


@pytest.mark.parametrize("sort", SORTS)
def test_a_list_without_search_goes_on_from_its_cursor_where_one_longer_page_would(
    command_api: str, query_api: str, http: requests.Session, sort: str
) -> None:
    for _ in range(3):
        create(http, command_api)
    url = f"{query_api}/api/contacts"
    whole = http.get(url, params={"sort": sort, "limit": "6"}, timeout=5).json()["items"]
    first = http.get(url, params={"sort": sort, "limit": "3"}, timeout=5).json()
    second = http.get(url, params={"sort": sort, "limit": "3", "cursor": first["next_cursor"]}, timeout=5).json()
    assert len(whole) == 6 and first["items"] + second["items"] == whole


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort": "phone"}, "sort"),
        ({"sort": ""}, "sort"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"search": "x" * 201}, "search"),
        ({"search": "\x00"}, "search"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(
    query_api: str, http: requests.Session, params: dict[str, str], field: str
) -> None:
    reply = http.get(f"{query_api}/api/contacts", params=params, timeout=5)
    assert reply.status_code == 422 and reply.headers["Content-Type"] == "application/problem+json"
    assert [error["field"] for error in reply.json()["errors"]] == [field]


@pytest.mark.parametrize(
    "payload",
    [
        b"not-a-cursor",
        b'{"s":"last_name","k":"Ada\\u0000","i":1}',
        b'{"s":"last_name","k":"\\udc00","i":1}',
        b'{"s":"last_name","k":"Ada","i":99999999999999999999}',
        b"[" * 2500,
    ],
)
def test_a_cursor_of_the_documented_shape_that_we_did_not_issue_is_a_404_naming_it(
    query_api: str, http: requests.Session, payload: bytes
) -> None:
    cursor = payload.decode() if payload == b"not-a-cursor" else base64.urlsafe_b64encode(payload).decode().rstrip("=")
    for path in ("/api/contacts", "/api/contacts/1/history"):
        reply = http.get(f"{query_api}{path}", params={"cursor": cursor}, timeout=5)
        assert reply.status_code == 404 and reply.headers["Content-Type"] == "application/problem+json", reply.text
        assert [error["field"] for error in reply.json()["errors"]] == ["cursor"]


def test_the_servers_own_refusals_are_problems(query_api: str, http: requests.Session) -> None:
    """gunicorn answers a request line over its limit, or too many headers, itself: as problem+json."""
    too_long = http.get(f"{query_api}/api/contacts", params={"search": "x" * 5000}, timeout=5)
    too_many = http.get(f"{query_api}/api/contacts", headers={f"X-{n}": "1" for n in range(101)}, timeout=5)
    for reply, status in ((too_long, 414), (too_many, 431)):
        assert reply.status_code == status and reply.headers["Content-Type"] == "application/problem+json"
        assert reply.json()["status"] == status


def test_search_takes_wildcards_quotes_backslashes_and_non_ascii_literally_and_ignores_case(
    command_api: str, query_api: str, http: requests.Session
) -> None:
    tag = uuid.uuid4().hex[:10]
    names = ["50%off", "50xoff", "a_b", "axb", "O'Brien", "back\\slash", "backslash", "Zoë-Ångström", "Zoe-Angstrom"]
    ids = {name: create(http, command_api, first_name=tag, last_name=name)["id"] for name in names}

    def found(term: str) -> set[str]:
        return {item["last_name"] for item in search(http, query_api, f"{tag} {term}")}

    assert found("50%off") == {"50%off"}
    assert found("50%") == {"50%off"}
    assert found("a_b") == {"a_b"}
    assert found("a_") == {"a_b"}
    assert found("o'brien") == {"O'Brien"}
    assert found("back\\s") == {"back\\slash"}
    assert found("ZOË-ÅNGSTRÖM") == {"Zoë-Ångström"}
    assert found("zoe") == {"Zoe-Angstrom"}
    assert {item["id"] for item in search(http, query_api, tag, limit=200)} == set(ids.values())
    email = create(http, command_api, first_name=tag, last_name="Mail")["email"]
    assert [item["email"] for item in search(http, query_api, email.upper())] == [email]


@pytest.mark.parametrize("sort", ["last_name", "-last_name", "updated_at", "-email"])
def test_pages_across_equal_sort_keys_skip_and_repeat_nothing_while_rows_are_inserted(
    command_api: str, query_api: str, http: requests.Session, sort: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    originals = {create(http, command_api, first_name=tag, last_name="Same")["id"] for _ in range(11)}
    seen: list[int] = []
    params: dict[str, Any] = {"search": tag, "sort": sort, "limit": 3}
    while True:
        page = http.get(f"{query_api}/api/contacts", params=params, timeout=10).json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
        create(http, command_api, first_name=tag, last_name="Same")  # lands anywhere in the order
    assert len(seen) == len(set(seen)), "no row is repeated"
    assert originals <= set(seen), "no row that existed throughout is skipped"


def test_the_query_role_can_read_but_not_write(infra: Infra) -> None:
    options = session_options(Settings(), read_only_role="contacts_reader")
    with psycopg.connect(infra.database_url, options=options) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("contacts_reader",)
        conn.execute("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM contact_versions)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM contacts")
    with (
        psycopg.connect(infra.database_url, options="-c role=contacts_reader") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("DELETE FROM contacts")


def test_while_the_database_is_unreachable_reads_are_503_with_retry_after_and_then_served_again(
    launch: Launch, infra: Infra, http: requests.Session
) -> None:
    proxy, database_url = proxied(infra.database_url, 5432)
    try:
        base = start_query_api(
            launch,
            "query-api-proxied",
            query_database_url=database_url,
            db_pool_timeout_seconds=1,
        )
        assert http.get(f"{base}/api/contacts", timeout=5).status_code == 200
        proxy.cut()
        # Each read fails at once: its pooled connection dropped, or none to be had within the pool's timeout.
        for _ in range(3):
            reply = http.get(f"{base}/api/contacts", params={"search": "ada"}, timeout=10)
            assert reply.status_code == 503, reply.text
            assert reply.headers["Content-Type"] == "application/problem+json"
            assert reply.headers["Retry-After"] == "1" and reply.json()["status"] == 503
        proxy.restore()
        wait_until(lambda: http.get(f"{base}/api/contacts", timeout=5).status_code == 200, message="reads served again")
    finally:
        proxy.close()
