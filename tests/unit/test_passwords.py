"""Passwords: argon2id hashes computed off the caller's thread, so a gevent worker keeps serving."""

import gevent
import pytest
from argon2.exceptions import VerificationError
from command_api.accounts import Passwords


def test_a_hash_checks_against_its_password_only() -> None:
    passwords = Passwords()
    hashed = passwords.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    passwords.verify(hashed, "correct horse battery")
    with pytest.raises(VerificationError):
        passwords.verify(hashed, "correct horse battering")


def test_other_greenlets_run_while_a_password_is_hashed_and_checked() -> None:
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            gevent.sleep(0.001)

    ticker = gevent.spawn(tick)
    gevent.sleep(0)  # the ticker is running
    passwords = Passwords()
    try:
        before = ticks
        hashed = passwords.hash("correct horse battery")  # blocking the hub would leave ticks as they were
        during_hash = ticks - before
        before = ticks
        passwords.verify(hashed, "correct horse battery")
        during_verify = ticks - before
    finally:
        ticker.kill()
    assert during_hash > 0
    assert during_verify > 0
