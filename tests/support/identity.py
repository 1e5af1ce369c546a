"""Signed-in callers for tests: this run's signing key, users made in the database, and tokens for them.

A token made here is what signing in would give (a session row and a token signed for it), without the
time argon2 takes to check a password at each test's sign-in.
"""

import secrets
import time
import uuid
from typing import Any

import psycopg
import requests
from argon2 import PasswordHasher

from shared.identity import Tokens
from shared.settings import Settings

#: The key every process a test starts signs and checks tokens with (tests.support.stack passes it).
SIGNING_KEY = secrets.token_hex(32)
TOKENS = Tokens(Settings(identity_signing_keys=[SIGNING_KEY]))


def create_user(database_url: str, role: str, password: str | None = None) -> dict[str, Any]:
    """A new user of `role` with a unique username; the dict has its columns, its password and the
    database it lives in (for `token_for`)."""
    password = password or secrets.token_urlsafe(16)
    username = f"{role}-{uuid.uuid4().hex[:12]}"
    name = f"Test {role.title()} {username[-4:]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (username, name, role, password_hash) VALUES (%s, %s, %s, %s) RETURNING id",
            (username, name, role, PasswordHasher().hash(password)),
        ).fetchone()
    assert row is not None
    return {
        "id": row[0],
        "username": username,
        "name": name,
        "role": role,
        "password": password,
        "database_url": database_url,
    }


def token_for(user: dict[str, Any], seconds: float = 43_200, tokens: Tokens = TOKENS) -> str:
    """A bearer token for a new session of `user`, both living `seconds`, signed by `tokens`."""
    session_id = str(uuid.uuid4())
    expires_at = time.time() + seconds
    with psycopg.connect(user["database_url"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (id, user_id, expires_at) VALUES (%s, %s, to_timestamp(%s))",
            (session_id, user["id"], expires_at),
        )
    return tokens.issue(
        user_id=user["id"],
        username=user["username"],
        name=user["name"],
        role=user["role"],
        session_id=session_id,
        expires_at=expires_at,
    )


def signed_in(session: requests.Session, token: str) -> requests.Session:
    """`session`, sending `token` as its bearer token from now on."""
    session.headers["Authorization"] = f"Bearer {token}"
    return session
