"""Presence in real Chromium (SPEC §11): two colleagues, each in a browser of their own, see who else is on a
contact, as initials in the list and on the contact, and are told before editing what someone else is editing."""

import uuid

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.conftest import LiveStack, ms, open_page, screenshot
from tests.e2e.test_browser import contact, create_in_background, row, search

pytestmark = pytest.mark.integration


def initials(name: str) -> str:
    words = name.split()
    return (words[0][0] + words[-1][0]).upper()


def test_a_colleague_sees_who_is_on_a_contact_and_is_told_before_editing_what_someone_else_is_editing(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    assert create_in_background(live_stack, contact(tag)).result().status_code == 201
    alice_name = live_stack.alice["name"]
    alice = open_page(browser, contexts, live_stack, live_stack.alice)
    bob = open_page(browser, contexts, live_stack, live_stack.bob)
    for page in (alice, bob):
        search(page, tag)

    row(alice, tag).click()
    viewing = row(bob, tag).get_by_title(f"{alice_name} is viewing")
    expect(viewing).to_contain_text(initials(alice_name), timeout=ms(5))
    expect(alice.get_by_title(f"{live_stack.bob['name']} is viewing")).to_have_count(0)  # not yet, nor herself
    expect(alice.get_by_title(f"{alice_name} is viewing")).to_have_count(0)

    alice.get_by_label("Phone", exact=True).fill("+1 202 555 0177")  # an edit not saved yet
    expect(row(bob, tag).get_by_title(f"{alice_name} is editing")).to_be_visible(timeout=ms(5))
    row(bob, tag).click()
    notice = bob.get_by_test_id("editing-notice")
    expect(notice).to_contain_text(f"{alice_name} is editing this contact.")
    expect(bob.get_by_role("complementary").get_by_title(f"{alice_name} is editing")).to_be_visible()
    expect(alice.get_by_role("complementary").get_by_title(f"{live_stack.bob['name']} is viewing")).to_be_visible(
        timeout=ms(5)
    )
    screenshot(bob, "presence-someone-else-is-editing")

    alice.get_by_role("button", name="Save").click()
    expect(alice.get_by_text("Saved version 2.")).to_be_visible(timeout=ms(5))
    expect(bob.get_by_role("complementary").get_by_title(f"{alice_name} is viewing")).to_be_visible(timeout=ms(5))
    expect(notice).to_be_empty()

    alice.context.close()  # the tab is gone
    expect(bob.get_by_title(f"{alice_name} is viewing")).to_have_count(0, timeout=ms(5))
