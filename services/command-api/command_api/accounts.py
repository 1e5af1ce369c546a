"""Signing in and out, and the users admins manage (SPEC §8); `python -m command_api.accounts ensure-admin`
makes the first admin.

Passwords are hashed with argon2id. A sign-in with a username nobody has checks the password against a
hash of our own, so that it costs what a wrong password costs: the answer and its time say nothing of
whether the user exists. Disabling a user, or changing their role or password, revokes every session of
theirs in the same transaction: a token never carries a stale role, and theirs stop working at once. The
last enabled admin cannot be disabled or made anything else: nobody would be left to manage users.
A hash takes tens of milliseconds of CPU, so it is computed on one of gevent's native threads (argon2's C
code runs there without the GIL), not on the worker's own, which would hold up every other request the
worker is serving meanwhile: the PATCHes, and the thousands of create replies it may be holding.
"""

import argparse
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import gevent
import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from psycopg import errors
from psycopg.rows import dict_row
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from command_api.errors import DuplicateUsername, InvalidUser, LastAdmin, UserNotFound
from command_api.store import AccountStore
from shared.db import Pool
from shared.identity import Caller, Tokens, Unauthenticated
from shared.logs import configure_logging
from shared.models import Name
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
MAX_USERNAME_LENGTH = 64


def _could_be_a_username(value: str) -> bool:
    return len(value) <= MAX_USERNAME_LENGTH and re.fullmatch(USERNAME_PATTERN, value) is not None


def _utf8(value: str) -> str:
    """The value, if it can be written as UTF-8 (argon2 hashes those bytes; PostgreSQL stores them)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate (\\ud800-\\udfff) is no character") from None
    return value


Role = Literal["viewer", "editor", "admin"]
Username = Annotated[str, Field(min_length=1, max_length=MAX_USERNAME_LENGTH, pattern=USERNAME_PATTERN)]
DisplayName = Annotated[Name, AfterValidator(_utf8)]
# A password is hashed, never stored: any characters, but a bound on what a request makes argon2 read.
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024), AfterValidator(_utf8)]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Checked as given: a username nobody can have is wrong like any other, never a 422.
    username: Annotated[str, Field(max_length=200), AfterValidator(_utf8)]
    password: Annotated[str, Field(max_length=1024), AfterValidator(_utf8)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Username
    name: DisplayName
    password: Password
    role: Role


class UserPatch(BaseModel):
    """Some fields of a user; those left out keep their value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: DisplayName | None = None
    role: Role | None = None
    password: Password | None = None
    disabled: StrictBool | None = None


class SessionUser(BaseModel):
    """Who a session is of, as its endpoints show them."""

    id: int
    username: str
    name: str
    role: Role


class User(SessionUser):
    """A user as the user endpoints show them."""

    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserList(BaseModel):
    items: list[User]


class Session(BaseModel):
    """A signed-in caller and a bearer token for them (POST and GET /api/session)."""

    user: SessionUser
    access_token: str = Field(description="send as Authorization: Bearer …; it lives ACCESS_TOKEN_SECONDS at most")
    expires_at: datetime


@dataclass(frozen=True)
class SignedIn:
    """A new session: the user, a bearer token and when it expires, and the session cookie's token."""

    user: dict[str, Any]
    access_token: str
    expires_at: datetime
    session_token: str


def public(user: dict[str, Any]) -> dict[str, Any]:
    """A user as the endpoints show them: never the password hash."""
    return {key: value for key, value in user.items() if key != "password_hash"}


class Passwords:
    """argon2id hashing and checking, off the worker's own thread (gevent's pool of native threads)."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher()

    def hash(self, password: str) -> str:
        return str(gevent.get_hub().threadpool.apply(self._hasher.hash, (password,)))

    def verify(self, password_hash: str, password: str) -> None:
        """Returns if the password matches the hash, else raises argon2's VerificationError."""
        gevent.get_hub().threadpool.apply(self._hasher.verify, (password_hash, password))


class Accounts:
    def __init__(self, pool: Pool, tokens: Tokens, settings: Settings) -> None:
        self._pool = pool
        self._tokens = tokens
        self._access_seconds = settings.access_token_seconds
        self._session_seconds = settings.session_seconds
        self._passwords = Passwords()
        self._nobody_hash = self._passwords.hash(secrets.token_urlsafe(16))  # checked when no user matches

    def sign_in(self, body: Any) -> SignedIn:
        given = _validated(SignIn, body)
        user = None
        if _could_be_a_username(given.username):  # else no one has it (a NUL, say): not even looked up
            with self._pool.connection() as conn:
                user = AccountStore(conn).credentials_of(given.username)
        refusal = self._refusal(user, given.password)
        if refusal is not None:
            log.warning("sign-in refused", extra={"username": given.username, "reason": refusal})
            raise Unauthenticated("wrong username or password")
        assert user is not None
        session_id = str(uuid.uuid4())
        session_end = time.time() + self._session_seconds
        with self._pool.connection() as conn:
            AccountStore(conn).insert_session(session_id, user["id"], datetime.fromtimestamp(session_end, UTC))
        log.info("signed in", extra={"user_id": user["id"], "username": user["username"], "session_id": session_id})
        caller = Caller(user["id"], user["username"], user["name"], user["role"], session_id, session_end)
        access_token, expires_at = self.access_token(caller)
        return SignedIn(_session_user(caller), access_token, expires_at, self._token(caller, session_end))

    def session(self, caller: Caller) -> dict[str, Any]:
        """The caller, and a fresh bearer token that lives no longer than the token it was asked with."""
        access_token, expires_at = self.access_token(caller)
        return {"user": _session_user(caller), "access_token": access_token, "expires_at": expires_at}

    def sign_out(self, caller: Caller) -> None:
        with self._pool.connection() as conn:
            AccountStore(conn).revoke_session(caller.session_id)
        log.info("signed out", extra={"user_id": caller.id, "session_id": caller.session_id})

    def users(self) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            return AccountStore(conn).users()

    def create_user(self, body: Any, by: Caller) -> dict[str, Any]:
        new = _validated(NewUser, body)
        password_hash = self._passwords.hash(new.password)
        try:
            with self._pool.connection() as conn:
                user = AccountStore(conn).insert_user(new.username, new.name, new.role, password_hash)
        except errors.UniqueViolation:
            raise DuplicateUsername() from None
        log.info("user created", extra={"user_id": user["id"], "role": user["role"], "by": by.id})
        return user

    def patch_user(self, user_id: int, body: Any, by: Caller) -> dict[str, Any]:
        patch = _validated(UserPatch, body)
        changes = patch.model_dump(exclude_none=True, exclude={"password"})
        if patch.password is not None:
            changes["password_hash"] = self._passwords.hash(patch.password)
        with self._pool.connection() as conn, conn.transaction():
            store = AccountStore(conn)
            stepping_down = patch.disabled or patch.role not in (None, "admin")
            if stepping_down and store.lock_enabled_admins() == [user_id]:
                raise LastAdmin()
            user = store.update_user(user_id, changes)
            if user is None:
                raise UserNotFound(user_id)
            if changes.keys() & {"role", "password_hash"} or patch.disabled:
                store.revoke_sessions_of(user_id)
        changed = sorted(field.removesuffix("_hash") for field in changes)
        log.info("user changed", extra={"user_id": user_id, "changed": changed, "by": by.id})
        return user

    def access_token(self, caller: Caller) -> tuple[str, datetime]:
        """A bearer token for the caller's session, and when it expires."""
        expires_at = min(time.time() + self._access_seconds, caller.expires_at)
        return self._token(caller, expires_at), datetime.fromtimestamp(int(expires_at), UTC)

    def _token(self, caller: Caller, expires_at: float) -> str:
        return self._tokens.issue(
            user_id=caller.id,
            username=caller.username,
            name=caller.name,
            role=caller.role,
            session_id=caller.session_id,
            expires_at=expires_at,
        )

    def _refusal(self, user: dict[str, Any] | None, password: str) -> str | None:
        """Why a sign-in is refused, for the log, or None; the password is checked in every case."""
        try:
            self._passwords.verify(user["password_hash"] if user else self._nobody_hash, password)
        except VerificationError:
            return "wrong password" if user else "no such user"
        if user is None:
            return "no such user"
        return "disabled" if user["disabled"] else None


def _session_user(caller: Caller) -> dict[str, Any]:
    return {"id": caller.id, "username": caller.username, "name": caller.name, "role": caller.role}


Model = TypeVar("Model", bound=BaseModel)


def _validated(model: type[Model], body: Any) -> Model:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise InvalidUser.from_validation_error(error) from None


def ensure_admin(settings: Settings) -> str | None:
    """Make the first admin when there is no user: named ADMIN_USERNAME, with ADMIN_PASSWORD or a random
    password. Returns the password when it was made here (to be shown once), else None."""
    given = settings.admin_password
    password = given.get_secret_value() if given else secrets.token_urlsafe(12)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"ADMIN_PASSWORD must have at least {MIN_PASSWORD_LENGTH} characters")
    username = settings.admin_username
    with psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row) as conn:
        added = AccountStore(conn).insert_first_user(username, username, "admin", Passwords().hash(password))
    if not added:
        log.info("users exist: no first admin made")
        return None
    log.info("first admin made", extra={"username": username})
    return None if given else password


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m command_api.accounts", description=__doc__)
    parser.add_argument("command", choices=["ensure-admin"])
    parser.parse_args()
    settings = get_settings()
    configure_logging("accounts", settings.log_level)
    password = ensure_admin(settings)
    if password:
        sign_in_at = settings.app_origins[0] if settings.app_origins else "the app"
        print(
            f"\nThe first admin: sign in at {sign_in_at} as {settings.admin_username!r} with the password\n\n"
            f"    {password}\n\nIt is shown this once; set ADMIN_PASSWORD to choose it instead.\n"
        )


if __name__ == "__main__":
    main()
