"""Every bad input of SPEC §3 gets its status and an RFC 9457 problem, never a 5xx; concurrency is refused cleanly."""

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema
import psycopg
import pytest
import requests

from tests.support.data import new_contact
from tests.support.identity import create_user, token_for
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def contact(command_api: str, http: requests.Session) -> dict[str, Any]:
    reply = http.post(f"{command_api}/api/contacts", json=new_contact())
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def assert_problem(reply: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == status
    assert problem["title"] and problem["type"] and problem["detail"]
    if field is not None:
        assert field in {error["field"] for error in problem["errors"]}, problem
    return dict(problem)


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"first_name": "   "}, "first_name"),
        ({"last_name": "x" * 101}, "last_name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@" + "b" * 250 + ".com"}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+1 555 0100 ext 9"}, "phone"),
        ({"phone": "1" * 16}, "phone"),
        ({"first_name": 42}, "first_name"),
        ({"email": None}, "email"),
        ({"nickname": "Ada"}, "nickname"),
        ({"first_name": "A\x00da"}, "first_name"),
        ({"last_name": "\x00"}, "last_name"),
        ({"email": "ada\x00@example.com"}, "email"),
        ({"phone": "+44 20 7946\x00 0958"}, "phone"),
        ({"first_name": "A\ud800da"}, "first_name"),
        ({"email": "ada\udfff@example.com"}, "email"),
    ],
)
def test_invalid_fields_are_named_in_a_422(
    command_api: str, http: requests.Session, fields: dict[str, Any], bad_field: str
) -> None:
    assert_problem(http.post(f"{command_api}/api/contacts", json=new_contact(**fields)), 422, bad_field)


def test_a_missing_field_is_named_and_read_only_fields_are_ignored(command_api: str, http: requests.Session) -> None:
    body = new_contact()
    del body["phone"]
    assert_problem(http.post(f"{command_api}/api/contacts", json=body), 422, "phone")
    echoed = {**new_contact(), "id": 999_999, "version": 7, "created_at": "x", "updated_at": "y"}
    created = http.post(f"{command_api}/api/contacts", json=echoed)
    assert created.status_code == 201
    assert created.json()["version"] == 1 and created.json()["id"] != 999_999


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_patch_or_put_with_text_postgresql_cannot_store_is_a_422(
    command_api: str, http: requests.Session, contact: dict[str, Any], field: str
) -> None:
    url = f"{command_api}/api/contacts/{contact['id']}"
    for text in ("Ada\x00", "\udbff"):
        assert_problem(http.patch(url, json={field: text}), 422, field)
        assert_problem(http.put(url, json=new_contact(**{field: text})), 422, field)
    assert http.patch(url, json={field: "Augusta"}).json()["version"] == 2, "nothing was written before"


def test_values_are_trimmed(command_api: str, http: requests.Session) -> None:
    body = new_contact()
    reply = http.post(f"{command_api}/api/contacts", json={**body, "first_name": "  Ada  "})
    assert reply.json()["first_name"] == "Ada"


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        (b'{"first_name": ', JSON, 400),
        (b"\xff\xfe not utf-8", JSON, 400),
        (b"", JSON, 400),
        (b"first_name=Ada", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b'{"first_name": "Ada"}', {}, 415),
        (b'{"a": "' + b"x" * (64 * 1024) + b'"}', JSON, 413),
        (b"[1, 2]", JSON, 422),
        (b'"just a string"', JSON, 422),
    ],
)
def test_malformed_requests_get_their_status(
    command_api: str, http: requests.Session, data: bytes, headers: dict[str, Any], status: int
) -> None:
    assert_problem(http.post(f"{command_api}/api/contacts", data=data, headers=headers), status)


def test_a_duplicate_email_is_a_409_naming_the_field(
    command_api: str, http: requests.Session, contact: dict[str, Any]
) -> None:
    duplicate = new_contact(email=contact["email"].upper())
    assert_problem(http.post(f"{command_api}/api/contacts", json=duplicate), 409, "email")
    other = http.post(f"{command_api}/api/contacts", json=new_contact()).json()
    moved = http.patch(f"{command_api}/api/contacts/{other['id']}", json={"email": contact["email"]})
    assert_problem(moved, 409, "email")


def test_an_email_is_free_again_once_its_contact_is_deleted(
    command_api: str, http: requests.Session, contact: dict[str, Any]
) -> None:
    assert http.delete(f"{command_api}/api/contacts/{contact['id']}").status_code == 204
    again = http.post(f"{command_api}/api/contacts", json=new_contact(email=contact["email"]))
    assert again.status_code == 201


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_unknown_or_deleted_contacts_are_404(
    command_api: str, http: requests.Session, contact: dict[str, Any], method: str
) -> None:
    for contact_id in (2**62, 2**70):
        assert_problem(http.request(method, f"{command_api}/api/contacts/{contact_id}", json=new_contact()), 404)
    http.delete(f"{command_api}/api/contacts/{contact['id']}")
    assert_problem(http.request(method, f"{command_api}/api/contacts/{contact['id']}", json=new_contact()), 404)


def _stored(infra: Infra, contact_id: int) -> tuple[tuple[str, int, bool], list[tuple[str, int, str | None]]]:
    """The contact's row (first name, version, deleted) and its events (type, version, first name)."""
    with psycopg.connect(infra.database_url) as conn:
        row = conn.execute(
            "SELECT first_name, version, deleted_at IS NOT NULL FROM contacts WHERE id = %s", (contact_id,)
        ).fetchone()
        events = conn.execute(
            """SELECT payload->>'type', (payload->>'version')::int, payload->'contact'->>'first_name' FROM outbox
               WHERE (payload->>'contact_id')::bigint = %s ORDER BY id""",
            (contact_id,),
        ).fetchall()
    assert row is not None
    return row, events


@pytest.mark.parametrize("if_match", ['"2"', 'W/"2"', "2", '"abc"', "nonsense"])
def test_a_stale_or_foreign_if_match_is_a_412_and_changes_nothing(
    command_api: str, http: requests.Session, infra: Infra, contact: dict[str, Any], if_match: str
) -> None:
    url = f"{command_api}/api/contacts/{contact['id']}"
    assert_problem(http.patch(url, json={"first_name": "Bea"}, headers={"If-Match": if_match}), 412)
    assert_problem(http.delete(url, headers={"If-Match": if_match}), 412)
    assert _stored(infra, contact["id"]) == (("Ada", 1, False), [("contact.created", 1, "Ada")])
    reply = http.patch(url, json={"first_name": "Bea"}, headers={"If-Match": "*"})
    assert reply.status_code == 200 and reply.json()["version"] == 2


def test_merge_patch_null_removes_a_mandatory_field_so_it_is_refused(
    command_api: str, http: requests.Session, contact: dict[str, Any]
) -> None:
    url = f"{command_api}/api/contacts/{contact['id']}"
    headers = {"Content-Type": "application/merge-patch+json"}
    assert_problem(http.patch(url, data=b'{"phone": null}', headers=headers), 422, "phone")
    assert http.patch(url, data=b'{"phone": "+1 555 0100 77"}', headers=headers).json()["version"] == 2


def test_concurrent_patches_with_the_same_if_match_let_exactly_one_win(
    command_api: str, infra: Infra, contact: dict[str, Any], http: requests.Session
) -> None:
    url = f"{command_api}/api/contacts/{contact['id']}"
    barrier = threading.Barrier(12)

    def patch(n: int) -> int:
        barrier.wait()
        return http.patch(url, json={"first_name": f"Writer {n}"}, headers={"If-Match": '"1"'}).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(patch, range(12)))
    assert sorted(statuses) == [200] + [412] * 11
    winner = f"Writer {statuses.index(200)}"
    assert _stored(infra, contact["id"]) == (
        (winner, 2, False),
        [("contact.created", 1, "Ada"), ("contact.updated", 2, winner)],
    )


def test_an_idempotency_key_replays_the_same_contact_and_refuses_another_body(
    command_api: str, http: requests.Session
) -> None:
    body = new_contact()
    key = {"Idempotency-Key": f"key-{body['email']}"}
    first = http.post(f"{command_api}/api/contacts", json=body, headers=key)
    with ThreadPoolExecutor(4) as pool:
        replays = list(pool.map(lambda _: http.post(f"{command_api}/api/contacts", json=body, headers=key), range(4)))
    assert first.status_code == 201
    assert {(reply.status_code, reply.json()["id"]) for reply in replays} == {(201, first.json()["id"])}
    assert_problem(http.post(f"{command_api}/api/contacts", json=new_contact(), headers=key), 422)
    assert_problem(http.post(f"{command_api}/api/contacts", json=body, headers={"Idempotency-Key": "x" * 300}), 400)


@pytest.mark.parametrize("key", ["k" * 200, "!", "~{}[]\"'`", "é", "a b", "x" * 201, ""])
def test_an_idempotency_key_is_accepted_exactly_when_the_document_allows_it(
    command_api: str, http: requests.Session, infra: Infra, key: str
) -> None:
    fresh_editor = create_user(infra.database_url, "editor")
    schema = next(
        parameter["schema"]
        for parameter in http.get(f"{command_api}/openapi.json").json()["paths"]["/api/contacts"]["post"]["parameters"]
        if parameter["name"] == "Idempotency-Key"
    )
    documented = jsonschema.Draft202012Validator(schema).is_valid(key)
    # A caller of its own, whose keys no other test (the fuzzers, say) has used: keys are the caller's.
    headers: dict[str, str | bytes] = {
        "Idempotency-Key": key.encode("latin-1"),
        "Authorization": f"Bearer {token_for(fresh_editor)}",
    }
    reply = requests.post(f"{command_api}/api/contacts", json=new_contact(), headers=headers)
    assert reply.status_code == (201 if documented else 400), reply.text


def test_an_idempotency_key_is_the_callers_own(command_api: str, infra: Infra) -> None:
    """The same key and body from another person is a create of theirs, not a replay of the first one's
    contact: here its email is taken, so a 409."""
    body = new_contact()
    replies = []
    for _ in range(2):
        token = token_for(create_user(infra.database_url, "editor"))
        headers = {"Idempotency-Key": "the-same-key", "Authorization": f"Bearer {token}"}
        replies.append(requests.post(f"{command_api}/api/contacts", json=body, headers=headers))
    assert replies[0].status_code == 201, replies[0].text
    assert_problem(replies[1], 409, "email")


def test_unsupported_methods_and_paths_are_problems(command_api: str, http: requests.Session) -> None:
    for method, url, allowed in [
        ("GET", f"{command_api}/api/contacts", {"OPTIONS", "POST"}),
        ("POST", f"{command_api}/api/contacts/1", {"DELETE", "OPTIONS", "PATCH", "PUT"}),
    ]:
        refused = http.request(method, url, json={})
        assert_problem(refused, 405)
        assert set(refused.headers["Allow"].split(", ")) == allowed
    assert_problem(http.patch(f"{command_api}/api/contacts/abc", json={}), 404)


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /api/contacts?q=" + b"x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"POST /api/contacts HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"POST /api/contacts HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"POST /api/contacts HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x00b\r\n\r\n", 400),
        (b"POST /api/contacts HTTP/1.1\r\nHost: x\r\nIdempotency Key: ab\r\n\r\n", 400),
        (b"P\x00ST /api/contacts HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_the_servers_own_refusals_are_documented_problems(
    command_api: str, http: requests.Session, request_head: bytes, status: int
) -> None:
    """gunicorn answers these before the app sees them: as problem+json, with a status the document lists."""
    reply = raw_request(command_api, request_head)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), reply[:300]
    assert b"\r\nContent-Type: application/problem+json\r\n" in head
    assert json.loads(body)["status"] == status
    for path in http.get(f"{command_api}/openapi.json").json()["paths"].values():
        assert all(str(status) in operation["responses"] for operation in path.values())


def raw_request(base_url: str, request_head: bytes) -> bytes:
    """The whole reply to bytes sent as they are, for requests no HTTP client would send."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request_head)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return reply
