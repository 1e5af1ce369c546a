"""The nginx gateway in front of both APIs, as `make run` starts it (services/web/gateway.sh)."""

import os
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import Launch
from tests.support.data import new_contact
from tests.support.identity import create_user
from tests.support.infra import Infra
from tests.support.notifier import start_notifier
from tests.support.processes import ROOT, TIMEOUT_FACTOR, free_port
from tests.support.read_side import start_query_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(launch_for_session: Launch, command_api: str) -> Iterator[str]:
    query_api = start_query_api(launch_for_session, name="query-api-for-gateway")
    notifier, _ = start_notifier(launch_for_session, name="notifier-for-gateway")
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
            notifier_port=notifier.rsplit(":", 1)[1],
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


def test_signing_in_and_out_and_the_users_reach_command_api_whatever_the_method(gateway: str, infra: Infra) -> None:
    admin = create_user(infra.database_url, "admin", password="a password of some length")
    with requests.Session() as browser:
        signed_in = browser.post(
            f"{gateway}/api/session", json={"username": admin["username"], "password": admin["password"]}, timeout=10
        )
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["name"] == admin["name"]
        cookie = signed_in.headers["Set-Cookie"]
        assert cookie.startswith("contacts_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        bearer = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

        # Reads too: query-api has neither path, and would answer 404.
        assert browser.get(f"{gateway}/api/session", timeout=10).json()["user"]["id"] == admin["id"]
        listed = browser.get(f"{gateway}/api/users", timeout=10)
        assert listed.status_code == 200 and admin["id"] in [user["id"] for user in listed.json()["items"]]

        added = browser.post(
            f"{gateway}/api/users",
            json={
                "username": f"new-{admin['username']}",
                "name": "Radia Perlman",
                "password": "x" * 12,
                "role": "viewer",
            },
            headers=bearer,
            timeout=10,
        )
        assert added.status_code == 201, added.text
        renamed = browser.patch(
            f"{gateway}/api/users/{added.json()['id']}", json={"name": "Radia J. Perlman"}, headers=bearer, timeout=10
        )
        assert renamed.status_code == 200 and renamed.json()["name"] == "Radia J. Perlman"

        assert browser.delete(f"{gateway}/api/session", headers=bearer, timeout=10).status_code == 204
        assert browser.get(f"{gateway}/api/session", timeout=10).status_code == 401  # the cookie's session ended


def test_the_websocket_upgrade_carries_the_session_cookie_to_the_notifier(gateway: str, infra: Infra) -> None:
    editor = create_user(infra.database_url, "editor")
    signed_in = requests.post(
        f"{gateway}/api/session", json={"username": editor["username"], "password": editor["password"]}, timeout=10
    )
    assert signed_in.status_code == 200, signed_in.text
    url = gateway.replace("http:", "ws:") + "/ws"
    cookie = f"contacts_session={signed_in.cookies['contacts_session']}"
    with connect(url, additional_headers={"Cookie": cookie}, open_timeout=10 * TIMEOUT_FACTOR) as live:
        assert '"hello"' in str(live.recv(timeout=10 * TIMEOUT_FACTOR))
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10 * TIMEOUT_FACTOR)
    assert refused.value.response.status_code == 401


class _Scripts(HTMLParser):
    """Every script element of a page and every inline event handler attribute (onclick=…) in it."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy by directive name."""
    parts = [part.split() for part in policy.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


@pytest.mark.parametrize("path", ["/", "/index.html", "/a/deep/link", "/api/contacts"])
def test_the_app_is_served_with_a_policy_that_allows_no_inline_script_and_no_framing(
    gateway: str, http: requests.Session, path: str
) -> None:
    reply = http.get(f"{gateway}{path}", timeout=10)
    policy = directives(reply.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"], policy  # no 'unsafe-inline', no nonce, no hash
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "same-origin"


def test_the_built_app_has_no_inline_script_for_the_policy_to_block() -> None:
    page = ROOT / "services/web/dist/index.html"
    if not page.exists():
        pytest.fail("build the web app first: make web")
    parser = _Scripts()
    parser.feed(page.read_text())
    assert parser.scripts, "the app is started by a script"
    assert all((script.get("src") or "").startswith("/assets/") for script in parser.scripts), parser.scripts
    assert parser.inline == [] and parser.handlers == []
