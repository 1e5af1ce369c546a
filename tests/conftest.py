"""Fixtures that run the system for real: this run's own database and vhost, and our processes on free ports."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from shared.broker import ensure_topology
from shared.migrate import upgrade
from tests.support.amqp import EventTap
from tests.support.infra import Infra, provision
from tests.support.processes import ServiceProcess, free_port

Launch = Callable[..., ServiceProcess]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provision() as provisioned:
        upgrade(provisioned.database_url)
        ensure_topology(provisioned.amqp_url)
        yield provisioned


def _launcher(infra: Infra) -> Iterator[Launch]:
    started: list[ServiceProcess] = []

    def launch(name: str, argv: list[str], health_path: str | None = "/healthz", **env: Any) -> ServiceProcess:
        port = env.pop("port")
        settings = {"DATABASE_URL": infra.database_url, "AMQP_URL": infra.amqp_url, "LOG_LEVEL": "INFO"}
        settings.update({key.upper(): str(value) for key, value in env.items()})
        health = f"http://127.0.0.1:{port}{health_path}" if health_path else None
        process = ServiceProcess(name, argv, settings, health).start()
        started.append(process)
        return process

    yield launch
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="session")
def launch_for_session(infra: Infra) -> Iterator[Launch]:
    yield from _launcher(infra)


@pytest.fixture
def launch(infra: Infra) -> Iterator[Launch]:
    """Start processes that live for one test only."""
    yield from _launcher(infra)


def start_command_api(launch: Launch, name: str = "command-api", **env: Any) -> str:
    port = free_port()
    launch(
        name,
        ["gunicorn", "-c", "services/command-api/gunicorn.conf.py"],
        port=port,
        command_api_port=port,
        command_api_workers=env.pop("workers", 2),
        **env,
    )
    return f"http://127.0.0.1:{port}"


def start_relay(launch: Launch, name: str = "relay", **env: Any) -> ServiceProcess:
    port = free_port()
    return launch(name, ["python", "-m", "command_api.relay"], "/metrics", port=port, relay_metrics_port=port, **env)


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


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
