"""The whole stack in containers, as docker-compose.yml runs it, used through its gateway and RabbitMQ's console.

The tests run in this order against one stack: healthy; sign in, create, live in Chromium, a command from the
console; scaled out; a crashed container restarted; `down -v` last.
"""

import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import expect, sync_playwright

from tests.compose.conftest import SCALED, contact, found, history
from tests.e2e.conftest import CHROMIUM, screenshot, sign_in, wait_live
from tests.support.commands import Console
from tests.support.containers import ComposeStack
from tests.support.processes import wait_until

LISTEN = Path(__file__).with_name("listen.py")


def console(stack: ComposeStack) -> Console:
    """The console's HTTP API as the operator of the env file (deploy/rabbitmq/definitions.json)."""
    return Console(stack.console_url, "/", "operator", stack.env["RABBITMQ_OPERATOR_PASSWORD"])


def test_every_container_is_healthy_and_the_migration_ran_once(stack: ComposeStack) -> None:
    states = stack.states()
    migrations = [name for name in states if "migrate" in name]
    assert len(migrations) == 1 and states[migrations[0]] == "exited 0", states
    services = {"postgres", "rabbitmq", "command-api", "relay", "commands", *SCALED, "gateway"}
    for service in services:
        (container,) = stack.containers(service)
        assert stack.inspect(container)["State"]["Health"]["Status"] == "healthy", service


def test_a_signed_in_create_is_answered_after_the_delay_and_visible_at_once(
    stack: ComposeStack, api: requests.Session
) -> None:
    tag = uuid.uuid4().hex[:8]
    delay = float(stack.env["CREATE_REPLY_DELAY_SECONDS"])
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        reply = pool.submit(api.post, f"{stack.url}/api/contacts", json=contact(tag), timeout=60)
        seen = wait_until(lambda: found(api, stack, tag), timeout=delay, interval=0.1, message="the contact listed")
        seen_after = time.monotonic() - started
        created = reply.result()
        answered_after = time.monotonic() - started
    assert created.status_code == 201, created.text
    assert seen_after < delay <= answered_after, (seen_after, answered_after)
    assert seen == [created.json()]
    assert created.headers["Location"].endswith(f"/api/contacts/{created.json()['id']}")


def test_a_change_shows_live_in_chromium(stack: ComposeStack, api: requests.Session, admin: dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:8]
    created = api.post(f"{stack.url}/api/contacts", json=contact(tag), timeout=60).json()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(stack.url)
        sign_in(page, {**admin, "name": admin["user"]["name"]})
        wait_live(page)
        page.get_by_label("Search").fill(tag)
        rows = page.get_by_test_id("contact-row")
        expect(rows).to_have_count(1)
        expect(rows.filter(has_text=created["email"])).to_be_visible()
        renamed = {"last_name": f"Hopper-Murray {tag}"}
        assert api.patch(f"{stack.url}/api/contacts/{created['id']}", json=renamed, timeout=10).status_code == 200
        expect(rows.filter(has_text=f"Hopper-Murray {tag}")).to_be_visible()
        expect(rows).to_have_count(1)
        screenshot(page, "compose-live-update")
        browser.close()


def test_a_command_typed_into_the_console_becomes_a_change_with_its_history(
    stack: ComposeStack, api: requests.Session
) -> None:
    tag = uuid.uuid4().hex[:8]
    operator = console(stack)
    operator.publish("contacts.commands", json.dumps({"command": "create", "data": contact(tag)}))
    (created,) = wait_until(lambda: found(api, stack, tag), timeout=15, interval=0.2, message="the console's create")
    update = {"command": "update", "contact_id": created["id"], "data": {"phone": "+1 555 0100"}, "expected_version": 1}
    operator.publish("contacts.commands", json.dumps(update))
    versions = wait_until(
        lambda: (items := history(api, stack, created["id"])) and len(items) == 2 and items,
        timeout=15,
        interval=0.2,
        message="two versions in the history",
    )
    assert [(item["version"], item["op"], item["source"]) for item in versions] == [
        (2, "updated", "console"),
        (1, "created", "console"),
    ]
    assert versions[0]["changed_fields"] == ["phone"] and versions[0]["contact"]["phone"] == "+1 555 0100"


class Listener:
    """listen.py inside one notifier container: every contact event that instance delivers to its client."""

    def __init__(self, container: str, token: str, count: int) -> None:
        self.container = container
        self._process = subprocess.Popen(
            ["docker", "exec", "-i", container, "python", "-", token, str(count), "60"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(LISTEN.read_text())
        self._process.stdin.close()
        hello = json.loads(self._process.stdout.readline())
        assert hello["type"] == "hello", hello

    def events(self) -> list[dict[str, Any]]:
        """What it printed until it had every event it waits for (or its minute was over)."""
        assert self._process.stdout is not None
        output = self._process.stdout.read()
        assert self._process.wait(timeout=10) == 0, f"the listener in {self.container} failed"
        return [json.loads(line) for line in output.splitlines()]


def test_scaled_out_nothing_is_lost_or_doubled_and_every_notifier_delivers_every_event(
    stack: ComposeStack, api: requests.Session, admin: dict[str, Any]
) -> None:
    stack.compose("up", "--detach", *(f"--scale={service}=2" for service in SCALED), timeout=600)
    # The stand-in gateway's nginx (Debian's 1.22) resolves the services' names at its start only: it is
    # restarted to see the new instances (nginx >= 1.27.3, the official image's, follows them by itself).
    stack.compose("restart", "gateway")
    stack.wait_healthy()
    for service in SCALED:
        assert len(stack.containers(service)) == 2, service

    count = 20
    listeners = [Listener(container, admin["access_token"], count) for container in stack.containers("notifier")]
    tag = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(count) as pool:
        replies = list(
            pool.map(
                lambda index: api.post(f"{stack.url}/api/contacts", json=contact(tag, index), timeout=60), range(count)
            )
        )
    assert [reply.status_code for reply in replies] == [201] * count, [reply.text for reply in replies]
    ids = sorted(reply.json()["id"] for reply in replies)
    assert len(set(ids)) == count

    listed = found(api, stack, tag)
    assert sorted(item["id"] for item in listed) == ids, "each create listed once"
    for contact_id in ids:
        versions = wait_until(lambda cid=contact_id: history(api, stack, cid), timeout=15, interval=0.2)
        assert [(item["version"], item["op"]) for item in versions] == [(1, "created")], contact_id
    for listener in listeners:
        delivered = [event["contact_id"] for event in listener.events() if event["type"] == "contact.created"]
        assert sorted(delivered) == ids, f"{listener.container} delivered each event once"

    # Both command-api instances took requests: the gateway spreads sign-ins (logged by the one that answers).
    for _ in range(4):
        credentials = {"username": admin["username"], "password": admin["password"]}
        assert requests.post(f"{stack.url}/api/session", json=credentials, timeout=30).status_code == 200
    for container in stack.containers("command-api"):
        assert '"signed in"' in stack.logs_of(container), f"{container} answered no sign-in"


def test_a_crashed_container_is_restarted_by_its_policy_and_the_stack_recovers(
    stack: ComposeStack, api: requests.Session
) -> None:
    """The broker's process killed as by a crash (`docker kill` itself counts as a stop by hand: no restart)."""
    (rabbitmq,) = stack.containers("rabbitmq")
    restarts = stack.inspect(rabbitmq)["RestartCount"]
    stack.crash(rabbitmq)
    tag = uuid.uuid4().hex[:8]
    # While the broker is away a write still succeeds: the outbox keeps its event until the relay can publish.
    created = api.post(f"{stack.url}/api/contacts", json=contact(tag), timeout=60)
    assert created.status_code == 201, created.text
    wait_until(lambda: stack.inspect(rabbitmq)["RestartCount"] > restarts, timeout=30, interval=0.5)
    stack.wait_healthy()
    versions = wait_until(lambda: history(api, stack, created.json()["id"]), timeout=60, interval=0.5)
    assert [(item["version"], item["op"]) for item in versions] == [(1, "created")]
    operator = console(stack)
    operator.publish("contacts.commands", json.dumps({"command": "delete", "contact_id": created.json()["id"]}))
    wait_until(lambda: not found(api, stack, tag), timeout=30, interval=0.5, message="the console's delete")


def test_down_leaves_nothing_of_the_project_behind(stack: ComposeStack) -> None:
    assert all(stack.leftovers().values())
    stack.down()
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
