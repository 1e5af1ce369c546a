"""Signing in and out in real Chromium: names on every change, the admin's users, a revoked session."""

import uuid

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.conftest import (
    CREATE_DELAY,
    LiveStack,
    ms,
    new_page,
    open_page,
    record_refusals,
    screenshot,
    sign_in,
    wait_live,
)
from tests.e2e.test_browser import contact, fill_contact, row, search
from tests.support.identity import create_user

pytestmark = pytest.mark.integration


def test_signing_in_shows_your_name_and_the_history_of_what_you_change(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    alice = live_stack.alice
    page = new_page(browser, contexts, width=390)  # a phone
    refused = record_refusals(page)
    page.goto(live_stack.url)

    page.get_by_label("Username").fill(alice["username"])
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("sign-in-error")).to_have_text("Wrong username or password.")
    screenshot(page, "sign-in-refused")
    sign_in(page, alice)
    wait_live(page)

    page.get_by_role("button", name="New contact").click()
    fill_contact(page, contact(tag))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("create-status")).to_contain_text("Created", timeout=ms(CREATE_DELAY + 15))
    page.get_by_role("button", name="Close", exact=True).click()
    search(page, tag)
    row(page, tag).click()
    page.get_by_role("button", name="History").click()
    expect(page.get_by_test_id("history-item")).to_contain_text(f"by {alice['name']}")
    screenshot(page, "history-names-who")
    assert refused == [], "the Content-Security-Policy refused what the app needs"


def test_signing_out_ends_the_session_for_the_cookie_too(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = open_page(browser, contexts, live_stack, live_stack.bob)
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}
    assert requests.get(f"{live_stack.url}/api/contacts", cookies=cookie, timeout=10).status_code == 200

    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_role("heading", name="Contacts — sign in")).to_be_visible()
    assert requests.get(f"{live_stack.url}/api/contacts", cookies=cookie, timeout=10).status_code == 401
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_an_admin_adds_a_user_who_signs_in_and_is_signed_out_when_disabled(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    newcomer = {
        "username": f"katherine-{tag}",
        "name": f"Katherine Johnson {tag}",
        "password": "orbital mechanics 1962",
    }
    admin = open_page(browser, contexts, live_stack, live_stack.admin)
    admin.get_by_role("link", name="Users").click()
    form = admin.get_by_role("form", name="Add a user")
    form.get_by_label("Username").fill(newcomer["username"])
    form.get_by_label("Full name").fill(newcomer["name"])
    form.get_by_label("Password").fill(newcomer["password"])
    form.get_by_label("Role", exact=True).select_option("editor")
    form.get_by_role("button", name="Add user").click()
    expect(admin.get_by_test_id("users-status")).to_have_text(
        f"Added {newcomer['name']} ({newcomer['username']}), editor."
    )
    screenshot(admin, "admin-adds-a-user")

    colleague = open_page(browser, contexts, live_stack, newcomer, width=390)
    expect(colleague.get_by_role("button", name="New contact")).to_be_visible()

    admin.get_by_test_id("user-row").filter(has_text=newcomer["username"]).get_by_role("button", name="Disable").click()
    expect(admin.get_by_test_id("users-status")).to_have_text(f"{newcomer['name']} is disabled and signed out.")
    # Revoked at once: the notifier closes the live connection (4003) and the app asks to sign in.
    expect(colleague.get_by_role("dialog", name="Sign in again")).to_be_visible(timeout=ms(5))
    expect(colleague.get_by_test_id("connection-status")).to_have_attribute("data-status", "signed-out")
    screenshot(colleague, "signed-out-when-disabled")


def test_a_viewer_reads_but_is_offered_no_writes(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    viewer = create_user(live_stack.database_url, "viewer")
    page = open_page(browser, contexts, live_stack, viewer)
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(viewer["name"])
    expect(page.get_by_role("button", name="New contact")).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
