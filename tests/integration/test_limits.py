"""Limits (SPEC §8): guessing a password is limited per username and per client address, a flood of writes
per user; over a limit a 429 with Retry-After and the draft's RateLimit fields. Two command-api instances
share every count (they are kept in PostgreSQL), so each test sends its requests to both in turn."""

import ipaddress
import itertools
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from shared.limits import SIGN_IN_PATH, WRITE_METHODS
from tests.support.identity import create_user, signed_in, token_for
from tests.support.infra import Infra
from tests.support.stack import Launch, start_command_api

PER_USERNAME = 3
PER_ADDRESS = 4
SIGN_IN_WINDOW = 300
WRITES = 5
WRITES_WINDOW = 60

#: `"<name>";r=<remaining>;t=<seconds>`, the draft's RateLimit item.
RATE_LIMIT = re.compile(r'"(?P<name>[a-z-]+)";r=(?P<remaining>\d+);t=(?P<reset>\d+)')


@pytest.fixture(scope="module")
def instances(launch_for_module: Launch) -> list[str]:
    limits = {
        "sign_in_attempts_per_username": PER_USERNAME,
        "sign_in_attempts_per_address": PER_ADDRESS,
        "sign_in_window_seconds": SIGN_IN_WINDOW,
        "writes_per_user": WRITES,
        "writes_window_seconds": WRITES_WINDOW,
        "create_reply_delay_seconds": 0,
        "command_api_workers": 1,
    }
    return [start_command_api(launch_for_module, f"command-api-limits-{n}", **limits) for n in (1, 2)]


@pytest.fixture
def both(instances: list[str]) -> Iterator[str]:
    """The two instances' base URLs, in turn, forever."""
    return itertools.cycle(instances)


def sign_in(base: str, username: str, password: str, address: str) -> requests.Response:
    # The client's own X-Forwarded-For entries come first; the gateway appends the address it saw.
    headers = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250}, {address}"}
    return requests.post(f"{base}/api/session", json={"username": username, "password": password}, headers=headers)


def fresh_address() -> str:
    """An address no other test signs in from (in 2001:db8::/32, the documentation prefix)."""
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | uuid.uuid4().int >> 64))


def rate_limit(response: requests.Response) -> dict[str, dict[str, int]]:
    return {
        match["name"]: {"remaining": int(match["remaining"]), "reset": int(match["reset"])}
        for match in RATE_LIMIT.finditer(response.headers["RateLimit"])
    }


def assert_too_many(response: requests.Response, limit: str, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/too-many-requests"
    assert limit in response.json()["detail"]
    left = rate_limit(response)[limit]
    assert left["remaining"] == 0
    assert 0 < int(response.headers["Retry-After"]) == left["reset"] <= window


def test_guessing_one_users_password_is_limited_from_whatever_address(infra: Infra, both: Iterator[str]) -> None:
    victim = create_user(infra.database_url, "editor")
    for _ in range(PER_USERNAME):
        assert sign_in(next(both), victim["username"], "not-the-password", fresh_address()).status_code == 401

    guess = sign_in(next(both), victim["username"].upper(), "not-the-password", fresh_address())
    assert_too_many(guess, "sign-in-username", SIGN_IN_WINDOW)
    # Within the window even the right password is refused, before it is checked: a guess that would have
    # been right tells nothing.
    assert_too_many(
        sign_in(next(both), victim["username"], victim["password"], fresh_address()), "sign-in-username", SIGN_IN_WINDOW
    )

    other = create_user(infra.database_url, "viewer")
    assert sign_in(next(both), other["username"], other["password"], fresh_address()).status_code == 200


def test_guessing_from_one_address_is_limited_whatever_the_username(infra: Infra, both: Iterator[str]) -> None:
    address = fresh_address()
    for n in range(PER_ADDRESS):
        answer = sign_in(next(both), f"nobody-{uuid.uuid4().hex}", "not-the-password", address)
        assert answer.status_code == 401
        assert rate_limit(answer)["sign-in-address"]["remaining"] == PER_ADDRESS - n - 1

    assert_too_many(
        sign_in(next(both), f"nobody-{uuid.uuid4().hex}", "x" * 12, address), "sign-in-address", SIGN_IN_WINDOW
    )
    user = create_user(infra.database_url, "editor")
    assert_too_many(sign_in(next(both), user["username"], user["password"], address), "sign-in-address", SIGN_IN_WINDOW)
    assert sign_in(next(both), user["username"], user["password"], fresh_address()).status_code == 200


def test_a_flood_of_writes_is_limited_per_user_and_another_user_writes_on(infra: Infra, both: Iterator[str]) -> None:
    flooder, other = (signed_in(requests.Session(), token_for(create_user(infra.database_url, "editor"))) for _ in "ab")
    policy = f'"writes";q={WRITES};w={WRITES_WINDOW}'
    for n in range(WRITES):
        created = flooder.post(f"{next(both)}/api/contacts", json=contact())
        assert created.status_code == 201, created.text
        assert created.headers["RateLimit-Policy"] == policy
        left = rate_limit(created)["writes"]
        assert left["remaining"] == WRITES - n - 1
        assert 0 < left["reset"] <= WRITES_WINDOW

    refused = flooder.post(f"{next(both)}/api/contacts", json=contact())
    assert_too_many(refused, "writes", WRITES_WINDOW)
    assert refused.headers["RateLimit-Policy"] == policy
    assert flooder.delete(f"{next(both)}/api/contacts/{created.json()['id']}").status_code == 429

    welcome = other.post(f"{next(both)}/api/contacts", json=contact())
    assert welcome.status_code == 201
    assert rate_limit(welcome)["writes"]["remaining"] == WRITES - 1


def contact() -> dict[str, Any]:
    return {
        "first_name": "Flo",
        "last_name": "Od",
        "email": f"flood-{uuid.uuid4().hex}@example.com",
        "phone": "+1 555 0100",
    }


def test_every_write_and_the_sign_in_document_their_429(instances: list[str]) -> None:
    document = requests.get(f"{instances[0]}/openapi.json").json()
    counted = [
        (path, method)
        for path, operations in document["paths"].items()
        for method in operations
        if path.startswith("/api/") and method.upper() in WRITE_METHODS and (path, method) != (SIGN_IN_PATH, "delete")
    ]
    assert ("/api/contacts", "post") in counted and (SIGN_IN_PATH, "post") in counted
    for path, method in counted:
        refusal = document["paths"][path][method]["responses"]["429"]
        assert set(refusal["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}, (path, method)
        assert "application/problem+json" in refusal["content"], (path, method)
