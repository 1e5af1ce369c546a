"""Accounts on a database of their own, where the test decides who the admins are: the last enabled admin
stays one, however admins are demoted or disabled, one at a time or at once."""

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from command_api.accounts import Accounts
from command_api.errors import LastAdmin

from shared.db import Pool, open_pool
from shared.identity import Caller, Tokens
from shared.migrate import upgrade
from shared.settings import Settings
from tests.support.identity import SIGNING_KEY, create_user
from tests.support.infra import provision

pytestmark = pytest.mark.integration


@pytest.fixture
def accounts() -> Iterator[tuple[Accounts, str]]:
    with provision() as fresh:
        upgrade(fresh.database_url)
        settings = Settings(database_url=fresh.database_url, identity_signing_keys=[SIGNING_KEY])
        pool: Pool = open_pool(settings)
        try:
            yield Accounts(pool, Tokens(settings), settings), fresh.database_url
        finally:
            pool.close()


def caller(user: dict[str, Any]) -> Caller:
    return Caller(user["id"], user["username"], user["name"], "admin", "test", 0.0)


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(accounts: tuple[Accounts, str]) -> None:
    store, database_url = accounts
    ada, grace = create_user(database_url, "admin"), create_user(database_url, "admin")
    assert store.patch_user(grace["id"], {"disabled": True}, by=caller(ada))["disabled"] is True
    for change in ({"disabled": True}, {"role": "editor"}, {"role": "viewer", "name": "Ada"}):
        with pytest.raises(LastAdmin):
            store.patch_user(ada["id"], change, by=caller(ada))
    assert store.patch_user(ada["id"], {"name": "Ada L.", "role": "admin"}, by=caller(ada))["name"] == "Ada L."
    assert store.patch_user(grace["id"], {"disabled": False}, by=caller(ada))["disabled"] is False
    assert store.patch_user(ada["id"], {"role": "editor"}, by=caller(grace))["role"] == "editor"


def test_two_admins_disabling_each_other_at_once_leave_one(accounts: tuple[Accounts, str]) -> None:
    store, database_url = accounts
    admins = [create_user(database_url, "admin") for _ in range(2)]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def disable(target: dict[str, Any], by: dict[str, Any]) -> None:
        start.wait()
        try:
            store.patch_user(target["id"], {"disabled": True}, by=caller(by))
            outcomes.append("disabled")
        except LastAdmin:
            outcomes.append("refused")

    threads = [threading.Thread(target=disable, args=(admins[n], admins[1 - n])) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["disabled", "refused"]
    assert sum(not user["disabled"] for user in store.users() if user["role"] == "admin") == 1
