"""The web app in real Chromium against the whole stack: live updates, commands, history, errors, resume."""

import json
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import CREATE_DELAY, LiveStack, ms, open_page, screenshot
from tests.support.commands import Console
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

_writers = ThreadPoolExecutor(4)


def contact(tag: str, **fields: str) -> dict[str, str]:
    return {
        "first_name": "Grace",
        "last_name": f"Hopper {tag}",
        "email": f"grace.{tag}@example.com",
        "phone": "+1 202 555 0100",
        **fields,
    }


def create_in_background(stack: LiveStack, body: dict[str, Any]) -> "Future[requests.Response]":
    """Create through the gateway; the reply is deferred, so it comes back as a future."""
    return _writers.submit(requests.post, f"{stack.url}/api/contacts", json=body, headers=stack.auth, timeout=60)


def row(page: Page, text: str) -> Any:
    return page.get_by_test_id("contact-row").filter(has_text=text)


def search(page: Page, text: str) -> None:
    page.get_by_label("Search").fill(text)


def fill_contact(page: Page, body: dict[str, str]) -> None:
    for label, field in (
        ("First name", "first_name"),
        ("Last name", "last_name"),
        ("Email", "email"),
        ("Phone", "phone"),
    ):
        page.get_by_label(label, exact=True).fill(body[field])


def test_two_colleagues_see_each_others_create_update_and_delete_live(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    alice = open_page(browser, contexts, live_stack, live_stack.alice)
    bob = open_page(browser, contexts, live_stack, live_stack.bob, width=390)
    for page in (alice, bob):
        search(page, tag)

    alice.get_by_role("button", name="New contact").click()
    fill_contact(alice, contact(tag))
    alice.get_by_role("button", name="Save").click()
    expect(alice.get_by_test_id("create-status")).to_contain_text("Saving")
    expect(row(bob, f"grace.{tag}@example.com")).to_be_visible(timeout=ms(CREATE_DELAY))
    assert "Saving" in alice.get_by_test_id("create-status").inner_text(), "seen before the deferred reply"
    expect(row(bob, tag)).to_contain_text(f"created by {live_stack.alice['name']}")
    screenshot(bob, "colleague-sees-create-while-creator-waits")
    expect(alice.get_by_test_id("create-status")).to_contain_text("Created", timeout=ms(15))

    row(bob, tag).click()
    bob.get_by_label("Last name", exact=True).fill(f"Hopper-Murray {tag}")
    bob.get_by_role("button", name="Save").click()
    expect(row(alice, f"Hopper-Murray {tag}")).to_be_visible(timeout=ms(5))
    expect(row(alice, tag)).to_contain_text(f"updated by {live_stack.bob['name']}")
    screenshot(alice, "update-from-a-colleague")

    bob.get_by_role("button", name="Delete").click()
    bob.get_by_role("alertdialog").get_by_role("button", name="Yes, delete").click()
    expect(row(alice, tag)).to_have_count(0, timeout=ms(5))


def test_a_command_published_over_rabbitmq_appears_in_the_page(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext], infra: Infra
) -> None:
    tag = uuid.uuid4().hex[:8]
    page = open_page(browser, contexts, live_stack, live_stack.alice)
    search(page, tag)
    Console.of(infra).publish("contacts.commands", json.dumps({"command": "create", "data": contact(tag)}))
    expect(row(page, f"grace.{tag}@example.com")).to_be_visible(timeout=ms(5))
    expect(row(page, tag)).to_contain_text("console")
    screenshot(page, "command-from-the-console")


def test_the_history_panel_shows_every_version_and_what_changed(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    created = create_in_background(live_stack, contact(tag)).result()
    assert created.status_code == 201, created.text
    url = f"{live_stack.url}/api/contacts/{created.json()['id']}"
    for patch in ({"phone": "+1 202 555 0199"}, {"first_name": "Amazing Grace"}):
        assert requests.patch(url, json=patch, headers=live_stack.auth, timeout=10).status_code == 200

    page = open_page(browser, contexts, live_stack, live_stack.alice)
    search(page, tag)
    row(page, tag).click()
    page.get_by_role("button", name="History").click()
    items = page.get_by_test_id("history-item")
    expect(items).to_have_count(3, timeout=ms(5))
    expect(items.nth(0)).to_contain_text("Version 3")
    expect(items.nth(0)).to_contain_text("Amazing Grace")
    expect(items.nth(0)).to_contain_text(f"by {live_stack.script['name']}")
    expect(items.nth(1)).to_contain_text("+1 202 555 0199")
    expect(items.nth(2)).to_contain_text("Version 1")
    screenshot(page, "history-panel")


def test_server_field_errors_appear_next_to_their_field(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    taken = contact(tag)
    assert create_in_background(live_stack, taken).result().status_code == 201
    page = open_page(browser, contexts, live_stack, live_stack.alice)
    page.get_by_role("button", name="New contact").click()
    fill_contact(page, contact(uuid.uuid4().hex[:8], email=taken["email"].upper()))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("error-email")).to_contain_text("already in use", timeout=ms(5))
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("aria-invalid", "true")
    screenshot(page, "field-error-from-the-server")


def test_after_the_notifier_restarts_the_page_shows_what_changed_meanwhile(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    first = create_in_background(live_stack, contact(tag)).result().json()
    page = open_page(browser, contexts, live_stack, live_stack.alice)
    search(page, tag)
    expect(row(page, first["email"])).to_be_visible()

    live_stack.notifier.stop()
    expect(page.get_by_test_id("connection-status")).not_to_have_attribute("data-status", "live", timeout=ms(10))
    renamed = requests.patch(
        f"{live_stack.url}/api/contacts/{first['id']}",
        json={"last_name": f"Renamed {tag}"},
        headers=live_stack.auth,
        timeout=10,
    )
    assert renamed.status_code == 200
    second = create_in_background(live_stack, contact(tag, email=f"second.{tag}@example.com"))
    live_stack.notifier.start()

    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "live", timeout=ms(30))
    expect(row(page, f"Renamed {tag}")).to_be_visible(timeout=ms(10))
    expect(row(page, f"second.{tag}@example.com")).to_be_visible(timeout=ms(10))
    assert second.result().status_code == 201
    screenshot(page, "after-notifier-restart")
