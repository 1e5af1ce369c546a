"""Tokens, where a request carries one, and what each role may do (shared.identity)."""

import time
import uuid

import jwt
import pytest
from pydantic import SecretStr

from shared.identity import (
    SESSION_COOKIE,
    Caller,
    Tokens,
    Unauthenticated,
    credentials,
    key_id,
    required_role,
)
from shared.settings import Settings

OLD, NEW = "old-key-" + "o" * 32, "new-key-" + "n" * 32


def tokens(*keys: str) -> Tokens:
    return Tokens(Settings(identity_signing_keys=[SecretStr(key) for key in keys]))


def issue(signer: Tokens, role: str = "editor", seconds: float = 60) -> str:
    return signer.issue(
        user_id=7,
        username="ada",
        name="Ada Lovelace",
        role=role,
        session_id=str(uuid.UUID(int=1)),
        expires_at=time.time() + seconds,
    )


def refusal(checker: Tokens, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        checker.verify(token)
    assert refused.value.challenge == 'Bearer error="invalid_token"'
    return refused.value.detail


def test_a_token_names_its_caller() -> None:
    caller = tokens(NEW).verify(issue(tokens(NEW)))
    assert (caller.id, caller.username, caller.name, caller.role) == (7, "ada", "Ada Lovelace", "editor")
    assert caller.session_id == str(uuid.UUID(int=1))
    assert caller.expires_at > time.time()
    assert caller.actor() == {"id": 7, "name": "Ada Lovelace"}


def test_the_first_key_signs_and_names_itself() -> None:
    token = issue(tokens(NEW, OLD))
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": key_id(NEW.encode())}
    assert jwt.decode(token, NEW, ["HS256"], issuer="contacts-live")["sub"] == "7"


def test_rotation_accepts_every_key_listed_and_none_removed() -> None:
    signed_with_old = issue(tokens(OLD))
    assert tokens(NEW, OLD).verify(signed_with_old).id == 7
    assert "key" in refusal(tokens(NEW), signed_with_old)


def test_an_expired_token_is_refused() -> None:
    assert refusal(tokens(NEW), issue(tokens(NEW), seconds=-1)) == "the token has expired"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "\x00", "é" * 10],
)
def test_what_is_no_token_is_refused(token: str) -> None:
    refusal(tokens(NEW), token)


def test_a_forged_or_altered_token_is_refused() -> None:
    header = {"kid": key_id(NEW.encode())}
    claims = jwt.decode(issue(tokens(NEW)), NEW, ["HS256"], issuer="contacts-live")
    forged = jwt.encode({**claims, "role": "admin"}, "not-our-key-" + "x" * 32, "HS256", headers=header)
    assert refusal(tokens(NEW), forged) == "the token is not valid"
    unsigned = jwt.encode(claims, None, "none", headers=header)
    assert refusal(tokens(NEW), unsigned) == "the token is not valid"


@pytest.mark.parametrize("drop", ["sub", "sid", "role", "exp", "iss"])
def test_a_token_without_a_claim_is_refused(drop: str) -> None:
    claims = jwt.decode(issue(tokens(NEW)), NEW, ["HS256"], issuer="contacts-live")
    del claims[drop]
    refusal(tokens(NEW), jwt.encode(claims, NEW, "HS256", headers={"kid": key_id(NEW.encode())}))


def test_a_token_of_a_role_we_do_not_have_is_refused() -> None:
    refusal(tokens(NEW), issue(tokens(NEW), role="root"))


def test_no_key_no_tokens() -> None:
    with pytest.raises(ValueError, match="IDENTITY_SIGNING_KEYS"):
        tokens()
    with pytest.raises(ValueError, match="IDENTITY_SIGNING_KEYS"):
        tokens("")


def test_each_role_may_what_the_one_below_may() -> None:
    def caller(role: str) -> Caller:
        return Caller(1, "u", "U", role, "s", 0.0)

    assert [caller("viewer").may(role) for role in ("viewer", "editor", "admin")] == [True, False, False]
    assert [caller("editor").may(role) for role in ("viewer", "editor", "admin")] == [True, True, False]
    assert [caller("admin").may(role) for role in ("viewer", "editor", "admin")] == [True, True, True]


def test_credentials_bearer_first_then_query_then_cookie() -> None:
    cookie = {SESSION_COOKIE: "c"}
    assert credentials({"Authorization": "Bearer b"}, cookie, {"access_token": "q"}) == ("bearer", "b")
    assert credentials({"Authorization": "bearer  b "}, {}) == ("bearer", "b")
    assert credentials({}, cookie, {"access_token": "q"}) == ("bearer", "q")
    assert credentials({}, cookie, None) == ("cookie", "c")
    assert credentials({"Authorization": "Basic dTpw"}, cookie) == ("cookie", "c")
    assert credentials({"Authorization": "Bearer "}, {}) is None
    assert credentials({}, {}, {"access_token": ""}) is None


def test_an_absent_token_is_challenged_without_an_error() -> None:
    assert Unauthenticated("sign in").challenge == "Bearer"


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/healthz", None),
        ("GET", "/openapi.json", None),
        ("GET", "/metrics", None),
        ("POST", "/api/session", None),
        ("GET", "/api/session", "viewer"),
        ("DELETE", "/api/session", "viewer"),
        ("GET", "/api/contacts", "viewer"),
        ("HEAD", "/api/contacts/1", "viewer"),
        ("GET", "/api/contacts/1/history", "viewer"),
        ("POST", "/api/contacts", "editor"),
        ("PUT", "/api/contacts/1", "editor"),
        ("PATCH", "/api/contacts/1", "editor"),
        ("DELETE", "/api/contacts/1", "editor"),
        ("GET", "/api/users", "admin"),
        ("POST", "/api/users", "admin"),
        ("PATCH", "/api/users/3", "admin"),
        ("GET", "/api/nothing-here", "viewer"),
        ("POST", "/api", "editor"),
    ],
)
def test_the_role_each_request_needs(method: str, path: str, role: str | None) -> None:
    assert required_role(method, path) == role


def test_a_token_verified_before_it_expired_is_refused_after(monkeypatch: pytest.MonkeyPatch) -> None:
    checker = tokens(NEW)
    token = issue(checker, seconds=60)
    assert checker.verify(token).id == 7  # decoded, and kept
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert refusal(checker, token) == "the token has expired"
