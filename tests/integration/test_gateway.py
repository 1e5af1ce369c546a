"""The nginx gateway in front of both APIs, as `make run` starts it (services/web/gateway.sh)."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Launch
from tests.support.data import new_contact
from tests.support.processes import free_port
from tests.support.read_side import start_query_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(launch_for_session: Launch, command_api: str) -> Iterator[str]:
    query_api = start_query_api(launch_for_session, name="query-api-for-gateway")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="contacts-web-root-") as directory:
        web_root = Path(directory)  # a page of its own: these tests need no built app
        os.chmod(web_root, 0o755)  # nginx's workers may run as another user
        (web_root / "index.html").write_text("<!doctype html><title>Contacts, live</title>")
        process = launch_for_session(
            "gateway",
            ["services/web/gateway.sh"],
            "/index.html",
            port=port,
            gateway_port=port,
            command_api_port=command_api.rsplit(":", 1)[1],
            query_api_port=query_api.rsplit(":", 1)[1],
            notifier_port=free_port(),  # no notifier: /ws is not on these tests' path
            web_root=web_root,
        )
        yield f"http://127.0.0.1:{port}"
        process.stop()


@pytest.mark.parametrize("given", [None, "caller-id-42", "not a token", "x" * 201])
def test_every_reply_has_one_x_request_id_the_one_the_service_logged(
    gateway: str, http: requests.Session, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    replies = [
        http.get(f"{gateway}/api/contacts", headers=headers, timeout=10),
        http.post(f"{gateway}/api/contacts", json=new_contact(email="bad"), headers=headers, timeout=10),
        http.get(f"{gateway}/index.html", headers=headers, timeout=10),
    ]
    for reply in replies:
        ids = reply.raw.headers.getlist("X-Request-ID")
        assert len(ids) == 1, (reply.request.method, reply.url, ids)
        if given == "caller-id-42":
            assert ids == [given]
        else:
            assert ids[0] != given and len(ids[0]) == 32
