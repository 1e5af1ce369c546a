"""Identity end to end (SPEC §8): every endpoint of command-api and query-api refuses callers without valid
credentials or the role, signing in and out, users managed by admins, and revocations heard by every
instance within a second."""

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import requests
from argon2 import PasswordHasher

from shared.identity import SESSION_COOKIE, Tokens
from shared.migrate import upgrade
from shared.settings import Settings
from tests.support.identity import SIGNING_KEY, create_user, signed_in, token_for
from tests.support.infra import Infra, provision
from tests.support.processes import PYTHONPATH, ROOT, TIMEOUT_FACTOR, wait_until
from tests.support.read_side import start_query_api
from tests.support.stack import Launch, start_command_api

pytestmark = pytest.mark.integration

APP_ORIGIN = "http://localhost:8080"
#: Every endpoint behind a sign-in, with the least role it needs: (service, method, path, role).
ENDPOINTS = [
    ("command", "POST", "/api/contacts", "editor"),
    ("command", "PUT", "/api/contacts/1", "editor"),
    ("command", "PATCH", "/api/contacts/1", "editor"),
    ("command", "DELETE", "/api/contacts/1", "editor"),
    ("command", "GET", "/api/session", "viewer"),
    ("command", "DELETE", "/api/session", "viewer"),
    ("command", "GET", "/api/users", "admin"),
    ("command", "POST", "/api/users", "admin"),
    ("command", "PATCH", "/api/users/1", "admin"),
    ("command", "POST", "/api/imports", "editor"),
    ("command", "GET", "/api/imports/1", "viewer"),
    ("query", "GET", "/api/contacts", "viewer"),
    ("query", "GET", "/api/contacts/1", "viewer"),
    ("query", "GET", "/api/contacts/1/history", "viewer"),
    ("query", "GET", "/api/contacts/export", "viewer"),
]
ROLES = ("viewer", "editor", "admin")


@pytest.fixture(scope="module")
def services(launch_for_module: Launch) -> dict[str, str]:
    return {
        "command": start_command_api(launch_for_module, create_reply_delay_seconds=0),
        "query": start_query_api(launch_for_module),
    }


def call(services: dict[str, str], service: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("json", {} if method in ("POST", "PUT", "PATCH") else None)
    return requests.request(method, services[service] + path, timeout=10, **kwargs)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthenticated(reply: requests.Response, challenge: str) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.headers["WWW-Authenticate"] == challenge
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.json()["type"] == "/problems/unauthenticated"


def revoked_token(infra: Infra) -> str:
    """A token of a session signed out in the database, as DELETE /api/session does it."""
    token = token_for(create_user(infra.database_url, "admin"))
    session_id = Tokens(Settings(identity_signing_keys=[SIGNING_KEY])).verify(token).session_id
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(
            "WITH revoked AS (UPDATE sessions SET revoked_at = now() WHERE id = %s RETURNING id)"
            " SELECT pg_notify('identity', id::text) FROM revoked",
            (session_id,),
        )
    return token


def refused_within_a_second(check: Callable[[], requests.Response]) -> None:
    wait_until(lambda: check().status_code == 401, timeout=1.0, message="the token to be refused")


@pytest.mark.parametrize(("service", "method", "path", "role"), ENDPOINTS)
def test_every_endpoint_refuses_callers_without_valid_credentials(
    services: dict[str, str], infra: Infra, service: str, method: str, path: str, role: str
) -> None:
    assert_unauthenticated(call(services, service, method, path), "Bearer")
    invalid = 'Bearer error="invalid_token"'
    assert_unauthenticated(call(services, service, method, path, headers=bearer("not-a-token")), invalid)
    assert_unauthenticated(call(services, service, method, path, cookies={SESSION_COOKIE: "x.y.z"}), invalid)
    expired = token_for(create_user(infra.database_url, "admin"), seconds=-1)
    reply = call(services, service, method, path, headers=bearer(expired))
    assert_unauthenticated(reply, invalid)
    assert reply.json()["detail"] == "the token has expired"
    revoked = revoked_token(infra)
    refused_within_a_second(lambda: call(services, service, method, path, headers=bearer(revoked)))
    assert call(services, service, method, path, headers=bearer(revoked)).json()["detail"] == (
        "this session was signed out"
    )


@pytest.mark.parametrize(("service", "method", "path", "role"), ENDPOINTS)
def test_every_endpoint_refuses_a_role_below_its_own(
    services: dict[str, str], infra: Infra, service: str, method: str, path: str, role: str
) -> None:
    for caller_role in ROLES:
        token = token_for(create_user(infra.database_url, caller_role))
        reply = call(services, service, method, path, headers=bearer(token))
        allowed = ROLES.index(caller_role) >= ROLES.index(role)
        assert (reply.status_code != 403) == allowed, (caller_role, reply.status_code, reply.text)
        assert reply.status_code != 401, reply.text
        if not allowed:
            assert reply.json()["type"] == "/problems/forbidden"


def test_the_probes_and_documents_stay_open(services: dict[str, str]) -> None:
    for base in services.values():
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert requests.get(base + path, timeout=10).status_code == 200, (base, path)


def sign_in(services: dict[str, str], username: str, password: str, **kwargs: Any) -> requests.Response:
    body = {"username": username, "password": password}
    return requests.post(services["command"] + "/api/session", json=body, timeout=10, **kwargs)


def test_signing_in_and_out(services: dict[str, str], infra: Infra) -> None:
    user = create_user(infra.database_url, "editor", password="correct horse battery")
    reply = sign_in(services, user["username"].upper(), "correct horse battery")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["user"] == {key: user[key] for key in ("id", "username", "name", "role")}
    assert set(body) == {"user", "access_token", "expires_at"}
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"):
        assert attribute in cookie
    assert "Secure" not in cookie
    assert (
        "Secure"
        in sign_in(services, user["username"], "correct horse battery", headers={"X-Forwarded-Proto": "https"}).headers[
            "Set-Cookie"
        ]
    )

    session_cookie = {SESSION_COOKIE: reply.cookies[SESSION_COOKIE]}
    # The cookie and the bearer token both name the caller; the cookie gets a fresh bearer token.
    for credentials in ({"headers": bearer(body["access_token"])}, {"cookies": session_cookie}):
        again = requests.get(services["command"] + "/api/session", timeout=10, **credentials)  # type: ignore[arg-type]
        assert again.status_code == 200, again.text
        assert again.json()["user"] == body["user"]
        fresh = again.json()["access_token"]
        assert requests.get(services["query"] + "/api/contacts", headers=bearer(fresh), timeout=10).ok

    out = requests.delete(services["command"] + "/api/session", headers=bearer(body["access_token"]), timeout=10)
    assert out.status_code == 204
    assert f'{SESSION_COOKIE}=""' in out.headers["Set-Cookie"] or "Max-Age=0" in out.headers["Set-Cookie"]
    # Signed out on command-api, refused by query-api (another process) within a second, cookie too.
    refused_within_a_second(
        lambda: requests.get(services["query"] + "/api/contacts", headers=bearer(body["access_token"]), timeout=10)
    )
    refused_within_a_second(
        lambda: requests.get(services["query"] + "/api/contacts", cookies=session_cookie, timeout=10)
    )


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer_in_about_the_same_time(
    services: dict[str, str], infra: Infra
) -> None:
    user = create_user(infra.database_url, "viewer")

    def attempt(username: str) -> tuple[float, requests.Response]:
        started = time.perf_counter()
        reply = sign_in(services, username, "not the password at all")
        return time.perf_counter() - started, reply

    wrong = [attempt(user["username"]) for _ in range(5)]
    unknown = [attempt("nobody-" + user["username"]) for _ in range(5)]
    for _, reply in wrong + unknown:
        assert_unauthenticated(reply, "Bearer")
        assert "Set-Cookie" not in reply.headers
    assert {reply.text for _, reply in wrong} == {reply.text for _, reply in unknown}
    # Both check a password with argon2 (tens of ms); without the check of a hash of our own, an unknown
    # user's answer would come back in a millisecond or two.
    ratio = statistics.median(t for t, _ in unknown) / statistics.median(t for t, _ in wrong)
    assert 0.5 < ratio < 2.0, ratio


@pytest.mark.parametrize("username", ["ada\u0000", "\u0000", "x" * 200, "ada lovelace", "é"])
def test_a_username_no_one_can_have_is_a_wrong_username_like_any_other(services: dict[str, str], username: str) -> None:
    """Found by schemathesis: a NUL in the username reached PostgreSQL, which refused it (a 500)."""
    reply = sign_in(services, username, "not the password at all")
    assert_unauthenticated(reply, "Bearer")


def test_a_cookie_writes_only_from_the_apps_own_origin(services: dict[str, str], infra: Infra) -> None:
    user = create_user(infra.database_url, "editor", password="correct horse battery")
    cookies = {SESSION_COOKIE: sign_in(services, user["username"], "correct horse battery").cookies[SESSION_COOKIE]}
    url = services["command"] + "/api/contacts/999999999"
    patch = {"first_name": "Eve"}
    for origin in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"}):
        reply = requests.patch(url, json=patch, cookies=cookies, headers=origin, timeout=10)
        assert reply.status_code == 403, (origin, reply.text)
        assert "origin" in reply.json()["detail"]
    assert (
        requests.patch(url, json=patch, cookies=cookies, headers={"Origin": APP_ORIGIN}, timeout=10).status_code == 404
    )
    # A bearer token is no cookie a foreign page could make the browser send: no Origin is asked of it.
    token = token_for(user)
    assert (
        requests.patch(
            url, json=patch, headers={**bearer(token), "Origin": "http://evil.example"}, timeout=10
        ).status_code
        == 404
    )
    # Reading by cookie from anywhere changes nothing, and sends nothing to the other origin (SameSite, CORS).
    assert requests.get(services["query"] + "/api/contacts", cookies=cookies, timeout=10).ok


def test_admins_manage_users(services: dict[str, str], infra: Infra, admin_token: str) -> None:
    admin = requests.Session()
    signed_in(admin, admin_token)
    users = services["command"] + "/api/users"
    new = {"username": "grace.h", "name": "Grace Hopper", "password": "a long enough one", "role": "viewer"}
    created = admin.post(users, json=new, timeout=10)
    assert created.status_code == 201, created.text
    grace = created.json()
    assert created.headers["Location"] == f"/api/users/{grace['id']}"
    assert {key: grace[key] for key in ("username", "name", "role", "disabled")} == {
        "username": "grace.h",
        "name": "Grace Hopper",
        "role": "viewer",
        "disabled": False,
    }
    assert "password" not in grace and "password_hash" not in grace
    assert admin.post(users, json={**new, "username": "GRACE.H"}, timeout=10).status_code == 409
    for field, value in (("password", "short"), ("role", "root"), ("username", "no spaces"), ("name", " ")):
        reply = admin.post(users, json={**new, "username": f"other-{field}", field: value}, timeout=10)
        assert reply.status_code == 422, (field, reply.text)
        assert [error["field"] for error in reply.json()["errors"]] == [field]
    listed = admin.get(users, timeout=10).json()["items"]
    assert grace in listed
    assert all("password_hash" not in user for user in listed)

    # A role change signs the user out everywhere: their tokens carry the role they were signed with.
    token = sign_in(services, "grace.h", "a long enough one").json()["access_token"]
    query = services["query"] + "/api/contacts"
    assert requests.get(query, headers=bearer(token), timeout=10).ok
    promoted = admin.patch(f"{users}/{grace['id']}", json={"role": "editor"}, timeout=10)
    assert promoted.status_code == 200 and promoted.json()["role"] == "editor"
    refused_within_a_second(lambda: requests.get(query, headers=bearer(token), timeout=10))

    # Disabled: every token refused at once, and signing in refused with the answer of a wrong password.
    token = sign_in(services, "grace.h", "a long enough one").json()["access_token"]
    assert requests.get(query, headers=bearer(token), timeout=10).ok
    disabled = admin.patch(f"{users}/{grace['id']}", json={"disabled": True}, timeout=10)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    refused_within_a_second(lambda: requests.get(query, headers=bearer(token), timeout=10))
    assert_unauthenticated(sign_in(services, "grace.h", "a long enough one"), "Bearer")
    enabled = admin.patch(
        f"{users}/{grace['id']}", json={"disabled": False, "password": "another long one"}, timeout=10
    )
    assert enabled.status_code == 200
    assert_unauthenticated(sign_in(services, "grace.h", "a long enough one"), "Bearer")
    assert sign_in(services, "grace.h", "another long one").status_code == 200

    assert admin.patch(f"{users}/999999999", json={"name": "Nobody"}, timeout=10).status_code == 404
    assert admin.patch(f"{users}/{grace['id']}", json={"disabled": "yes"}, timeout=10).status_code == 422
    assert admin.patch(f"{users}/{grace['id']}", json={"password_hash": "x"}, timeout=10).status_code == 422


def test_signing_keys_rotate(launch: Launch, infra: Infra) -> None:
    """A key put first signs; the one it replaced still verifies until it is removed."""
    new_key = "rotated-" + SIGNING_KEY
    user = create_user(infra.database_url, "viewer")
    old_token = token_for(user)
    new_token = token_for(user, tokens=Tokens(Settings(identity_signing_keys=[new_key])))
    both = start_query_api(launch, "query-api-both-keys", identity_signing_keys=json.dumps([new_key, SIGNING_KEY]))
    only_new = start_query_api(launch, "query-api-new-key", identity_signing_keys=json.dumps([new_key]))
    for token in (old_token, new_token):
        assert requests.get(both + "/api/contacts", headers=bearer(token), timeout=10).ok
    assert requests.get(only_new + "/api/contacts", headers=bearer(new_token), timeout=10).ok
    reply = requests.get(only_new + "/api/contacts", headers=bearer(old_token), timeout=10)
    assert_unauthenticated(reply, 'Bearer error="invalid_token"')


def test_a_session_revoked_before_an_instance_starts_is_refused_by_it(launch: Launch, infra: Infra) -> None:
    token = revoked_token(infra)
    query_api = start_query_api(launch, "query-api-late")
    assert_unauthenticated(
        requests.get(query_api + "/api/contacts", headers=bearer(token), timeout=10), ('Bearer error="invalid_token"')
    )


def test_a_service_without_a_signing_key_refuses_to_start(infra: Infra) -> None:
    environment = {**os.environ, "PYTHONPATH": PYTHONPATH, "DATABASE_URL": infra.database_url}
    environment.pop("IDENTITY_SIGNING_KEYS", None)
    for module in ("command_api.app", "query_api.app"):
        started = subprocess.run(
            [sys.executable, "-c", f"import {module} as app; app.create_app()"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60 * TIMEOUT_FACTOR,
        )
        assert started.returncode != 0
        assert "IDENTITY_SIGNING_KEYS" in started.stderr


def test_ensure_admin_makes_the_first_admin_once() -> None:
    with provision() as fresh:
        upgrade(fresh.database_url)
        environment = {**os.environ, "PYTHONPATH": PYTHONPATH, "DATABASE_URL": fresh.database_url}
        environment.pop("ADMIN_PASSWORD", None)

        def ensure_admin(**env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "command_api.accounts", "ensure-admin"],
                cwd=ROOT,
                env={**environment, **env},
                capture_output=True,
                text=True,
                timeout=60 * TIMEOUT_FACTOR,
            )

        assert ensure_admin(ADMIN_PASSWORD="too short").returncode != 0
        first = ensure_admin()
        assert first.returncode == 0, first.stderr
        password = first.stdout.split("with the password")[1].split()[0]
        assert "sign in at http://localhost:8080 as 'admin'" in first.stdout
        second = ensure_admin(ADMIN_PASSWORD="a password given this time")
        assert second.returncode == 0 and "password" not in second.stdout
        with psycopg.connect(fresh.database_url) as conn:
            rows = conn.execute("SELECT username, role, password_hash FROM users").fetchall()
        assert [(username, role) for username, role, _ in rows] == [("admin", "admin")]
        assert PasswordHasher().verify(rows[0][2], password)
        assert rows[0][2].startswith("$argon2id$")


def test_the_documents_say_how_to_sign_in_and_what_a_refusal_is(services: dict[str, str]) -> None:
    operations = 0
    for base in services.values():
        document = requests.get(base + "/openapi.json", timeout=10).json()
        assert document["security"] == [{"bearer": []}, {"session": []}]
        assert document["components"]["securitySchemes"]["session"]["name"] == SESSION_COOKIE
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                operations += 1
                if (method, path) == ("post", "/api/session"):
                    assert operation["security"] == []
                    assert "401" in operation["responses"]
                else:
                    assert {"401", "403"} <= operation["responses"].keys(), (method, path)
    assert operations == len(ENDPOINTS) + 1
