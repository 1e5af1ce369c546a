"""The stack of docker-compose.yml, built and run with docker-compose.local-images.yml: once for these tests.

Skipped, with the reason, where no Docker engine, compose or stand-in image is there (`make compose-test`
and `make test` provide them where they can: deploy/with-docker.sh).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from tests.support.containers import ComposeStack, docker_missing, image_sizes
from tests.support.processes import ROOT

ARTIFACTS = ROOT / "test-artifacts"
#: The four services scaled out (docker-compose.yml's comment and the README give the same command).
SCALED = ("command-api", "query-api", "history-worker", "notifier")


@pytest.fixture(scope="session")
def docker_here() -> None:
    reason = docker_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def built(docker_here: None, tmp_path_factory: pytest.TempPathFactory) -> ComposeStack:
    """Every image of the stack built (from the layer cache where nothing changed), not yet started."""
    stack = ComposeStack(tmp_path_factory.mktemp("compose"))
    stack.compose("build", timeout=1800)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "image-sizes.json").write_text(json.dumps(image_sizes(), indent=2) + "\n")
    return stack


@contextmanager
def running(stack: ComposeStack) -> Iterator[ComposeStack]:
    """The stack up and healthy, one instance of each service; `docker-compose down -v` at the end."""
    try:
        stack.compose("up", "--detach", timeout=600)
        stack.wait_healthy()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def stack(built: ComposeStack) -> Iterator[ComposeStack]:
    """docker-compose.yml's stack, running for the module (test_cluster.py has a stack of its own)."""
    with running(built) as up:
        yield up


@pytest.fixture(scope="module")
def admin(stack: ComposeStack) -> dict[str, Any]:
    """The first admin compose made (ADMIN_USERNAME / ADMIN_PASSWORD of the env file), signed in: its token."""
    credentials = {"username": stack.env["ADMIN_USERNAME"], "password": stack.env["ADMIN_PASSWORD"]}
    reply = requests.post(f"{stack.url}/api/session", json=credentials, timeout=30)
    assert reply.status_code == 200, reply.text
    return {**credentials, **reply.json()}


@pytest.fixture
def api(stack: ComposeStack, admin: dict[str, Any]) -> Iterator[requests.Session]:
    """HTTP through the gateway, signed in with the admin's bearer token."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {admin['access_token']}"
        yield session


def contact(tag: str, index: int = 0) -> dict[str, str]:
    return {
        "first_name": "Grace",
        "last_name": f"Hopper {tag} {index}",
        "email": f"grace.{tag}.{index}@example.com",
        "phone": "+1 202 555 0100",
    }


def found(api: requests.Session, stack: ComposeStack, tag: str) -> list[dict[str, Any]]:
    reply = api.get(f"{stack.url}/api/contacts", params={"search": tag, "limit": "200"}, timeout=10)
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


def history(api: requests.Session, stack: ComposeStack, contact_id: int) -> list[dict[str, Any]]:
    reply = api.get(f"{stack.url}/api/contacts/{contact_id}/history", timeout=10)
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items
