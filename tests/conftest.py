"""Fixtures that run the system for real: this run's own database and vhost, and our processes on free ports."""

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from shared.broker import ensure_topology
from shared.migrate import upgrade
from tests.support.amqp import EventTap
from tests.support.identity import create_user, signed_in, token_for
from tests.support.infra import Infra, provision
from tests.support.processes import ServiceProcess
from tests.support.stack import Launch, Stack, start_command_api, start_relay

__all__ = ["Launch", "start_command_api", "start_relay"]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provision() as provisioned:
        upgrade(provisioned.database_url)
        ensure_topology(provisioned.amqp_url)
        yield provisioned


def _launcher(infra: Infra) -> Iterator[Launch]:
    stack = Stack(infra)
    yield stack.launch
    stack.stop()


@pytest.fixture(scope="session")
def launch_for_session(infra: Infra) -> Iterator[Launch]:
    yield from _launcher(infra)


@pytest.fixture(scope="module")
def launch_for_module(infra: Infra) -> Iterator[Launch]:
    """Start processes that live for one test module: stopped before the next module runs."""
    yield from _launcher(infra)


@pytest.fixture
def launch(infra: Infra) -> Iterator[Launch]:
    """Start processes that live for one test only."""
    yield from _launcher(infra)


@pytest.fixture(scope="session")
def command_api(launch_for_session: Launch) -> str:
    """Base URL of a command-api whose create replies are not deferred, for tests about other things."""
    return start_command_api(launch_for_session, create_reply_delay_seconds=0)


@pytest.fixture(scope="session")
def relay(launch_for_session: Launch) -> ServiceProcess:
    return start_relay(launch_for_session, relay_poll_seconds=0.2)


@pytest.fixture
def events(infra: Infra) -> Iterator[EventTap]:
    tap = EventTap(infra.amqp_url)
    yield tap
    tap.close()


@pytest.fixture(scope="session")
def editor_user(infra: Infra) -> dict[str, Any]:
    return create_user(infra.database_url, "editor")


@pytest.fixture(scope="session")
def viewer_user(infra: Infra) -> dict[str, Any]:
    return create_user(infra.database_url, "viewer")


@pytest.fixture(scope="session")
def admin_user(infra: Infra) -> dict[str, Any]:
    return create_user(infra.database_url, "admin")


@pytest.fixture(scope="session")
def editor_token(editor_user: dict[str, Any]) -> str:
    return token_for(editor_user)


@pytest.fixture(scope="session")
def viewer_token(viewer_user: dict[str, Any]) -> str:
    return token_for(viewer_user)


@pytest.fixture(scope="session")
def admin_token(admin_user: dict[str, Any]) -> str:
    return token_for(admin_user)


@pytest.fixture
def http(editor_token: str) -> Iterator[requests.Session]:
    """An HTTP session signed in as an editor."""
    with requests.Session() as session:
        yield signed_in(session, editor_token)
