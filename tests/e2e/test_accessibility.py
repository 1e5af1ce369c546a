"""Accessibility in real Chromium (SPEC §11): an automated audit of every view (axe-core, the npm package the web
app installs for its tests) finds no violation, and the main tasks are done with the keyboard alone."""

import json
import uuid
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.e2e.conftest import LiveStack, ms, sign_in, wait_live
from tests.e2e.test_browser import contact, create_in_background, row, search
from tests.support.identity import create_user
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

AXE = ROOT / "services/web/node_modules/axe-core/axe.min.js"


@pytest.fixture
def audited(browser: Browser, contexts: list[BrowserContext]) -> Any:
    """`new(width)`: a page with axe-core loaded before the app's own scripts (as the browser's, not the page's:
    the app's Content-Security-Policy allows no inline script, and is not relaxed for the audit)."""
    if not AXE.exists():
        pytest.fail("install the web app's packages first: cd services/web && npm ci")

    def new(width: int = 1280) -> Page:
        context = browser.new_context(viewport={"width": width, "height": 800})
        contexts.append(context)
        context.add_init_script(path=str(AXE))
        return context.new_page()

    return new


def violations(page: Page) -> list[dict[str, Any]]:
    """Every rule of axe-core's (WCAG 2.x A and AA, and its best practices) the page as it stands breaks."""
    results = page.evaluate("async () => { const r = await axe.run(document); return [r.violations, r.passes.length] }")
    found, passed = results
    assert passed > 0, "axe-core checked nothing"
    return [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["html"][:200] for n in v["nodes"]]}
        for v in found
    ]


def assert_accessible(page: Page, view: str) -> None:
    found = violations(page)
    assert found == [], f"{view}: {json.dumps(found, indent=1)}"


def test_the_audit_finds_a_violation_where_there_is_one(audited: Any) -> None:
    page: Page = audited()
    page.set_content('<html lang="en"><title>t</title><main><img src="data:,"><button></button></main></html>')
    assert {found["rule"] for found in violations(page)} >= {"image-alt", "button-name"}


def test_every_view_passes_the_accessibility_audit(live_stack: LiveStack, audited: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    assert create_in_background(live_stack, contact(tag)).result().status_code == 201
    taken = contact(uuid.uuid4().hex[:8])
    assert create_in_background(live_stack, taken).result().status_code == 201
    page: Page = audited()
    page.goto(live_stack.url)
    expect(page.get_by_label("Username")).to_be_visible(timeout=ms(10))
    assert_accessible(page, "sign-in")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("sign-in-error")).to_be_visible()
    assert_accessible(page, "sign-in refused")

    sign_in(page, live_stack.admin)
    wait_live(page)
    search(page, tag)
    expect(row(page, tag)).to_be_visible()
    assert_accessible(page, "the contact list")
    search(page, f"no such contact {tag}")
    expect(page.get_by_text("No contacts match")).to_be_visible()
    assert_accessible(page, "an empty search")

    search(page, tag)
    row(page, tag).click()
    page.get_by_role("button", name="History").click()
    expect(page.get_by_test_id("history-item")).to_have_count(1, timeout=ms(5))
    assert_accessible(page, "a contact, its history open")
    page.get_by_label("Email", exact=True).fill(taken["email"])  # the server refuses it: 409
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("aria-invalid", "true", timeout=ms(5))
    assert_accessible(page, "a field error")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("alertdialog")).to_be_visible()
    assert_accessible(page, "the delete dialog")
    page.keyboard.press("Escape")

    page.get_by_role("button", name="New contact").click()
    expect(page.get_by_label("First name", exact=True)).to_be_focused()
    assert_accessible(page, "the create form")

    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    assert_accessible(page, "the users page")


def test_presence_and_the_editing_notice_pass_the_audit_on_a_phone(live_stack: LiveStack, audited: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    assert create_in_background(live_stack, contact(tag)).result().status_code == 201
    editing, watching = audited(), audited(width=390)
    for page, user in ((editing, live_stack.alice), (watching, live_stack.bob)):
        page.goto(live_stack.url)
        sign_in(page, user)
        wait_live(page)
        search(page, tag)
    row(editing, tag).click()
    editing.get_by_label("Phone", exact=True).fill("+1 202 555 0166")
    expect(row(watching, tag).get_by_title(f"{live_stack.alice['name']} is editing")).to_be_visible(timeout=ms(5))
    assert_accessible(watching, "the list with someone's initials, on a phone")
    row(watching, tag).click()
    expect(watching.get_by_test_id("editing-notice")).to_contain_text("is editing this contact")
    assert_accessible(watching, "the editing notice, on a phone")


def test_a_viewers_app_and_the_sign_in_again_dialog_pass_the_audit(live_stack: LiveStack, audited: Any) -> None:
    page: Page = audited()
    page.goto(live_stack.url)
    sign_in(page, create_user(live_stack.database_url, "viewer"))
    wait_live(page)
    assert_accessible(page, "the viewer's list")

    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    signed_out = requests.delete(
        f"{live_stack.url}/api/session", cookies=cookies, headers={"Origin": live_stack.url}, timeout=10
    )
    assert signed_out.status_code == 204, signed_out.text  # signed out elsewhere: the notifier closes with 4003
    expect(page.get_by_role("dialog", name="Sign in again")).to_be_visible(timeout=ms(5))
    assert_accessible(page, "sign in again, over the app")


def tab_to(page: Page, target: Locator, most: int = 40) -> None:
    """Press Tab (only) until `target` has the focus."""
    for _ in range(most):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{most} presses of Tab did not reach {target}")


def test_the_main_tasks_by_keyboard_alone(live_stack: LiveStack, audited: Any) -> None:
    """Sign in, search, open a contact, edit and save it, create one: no mouse, no clicks."""
    tag = uuid.uuid4().hex[:8]
    assert create_in_background(live_stack, contact(tag)).result().status_code == 201
    page: Page = audited()
    keys = page.keyboard
    page.goto(live_stack.url)

    tab_to(page, page.get_by_label("Username"))
    keys.type(live_stack.alice["username"])
    keys.press("Tab")
    keys.type(live_stack.alice["password"])
    keys.press("Enter")
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(live_stack.alice["name"], timeout=ms(10))
    wait_live(page)

    tab_to(page, page.get_by_label("Search"))
    keys.type(tag)
    tab_to(page, row(page, tag))
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Edit contact")).to_be_focused()

    tab_to(page, page.get_by_label("Phone", exact=True))
    keys.press("Control+A")
    keys.type("+1 202 555 0155")
    tab_to(page, page.get_by_role("button", name="Save"))
    keys.press("Enter")
    expect(page.get_by_text("Saved version 2.")).to_be_visible(timeout=ms(5))
    expect(row(page, tag)).to_contain_text("+1 202 555 0155")

    tab_to(page, page.get_by_role("button", name="New contact"))
    keys.press("Enter")
    created = contact(uuid.uuid4().hex[:8])
    expect(page.get_by_label("First name", exact=True)).to_be_focused()
    for field in ("first_name", "last_name", "email", "phone"):
        keys.type(created[field])
        keys.press("Tab")
    keys.press("Shift+Tab")  # back in the last field: Enter submits the form
    keys.press("Enter")
    expect(page.get_by_test_id("create-status")).to_contain_text("Created", timeout=ms(30))
    search_for_created = page.get_by_label("Search")
    tab_to(page, search_for_created)
    keys.press("Control+A")
    keys.type(created["email"])
    expect(row(page, created["email"])).to_be_visible(timeout=ms(5))
