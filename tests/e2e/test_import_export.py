"""Importing a file and exporting a search in real Chromium (SPEC §11)."""

import uuid

import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, expect

from shared.contact_files import read_csv
from tests.e2e.conftest import LiveStack, ms, open_page, record_refusals, screenshot
from tests.e2e.test_browser import row, search

pytestmark = pytest.mark.integration


def test_an_imported_file_shows_its_progress_and_rejected_rows_and_a_search_exports_as_it_is_shown(
    live_stack: LiveStack, browser: Browser, contexts: list[BrowserContext]
) -> None:
    tag = uuid.uuid4().hex[:8]
    page = open_page(browser, contexts, live_stack, live_stack.alice)
    refused = record_refusals(page)
    content = (
        "First Name;Last Name;E-mail;Phone\n"
        f"Ada;Lovelace {tag};ada.{tag}@example.com;+44 20 7946 0958\n"
        f"Grace;Hopper {tag};grace.{tag}@example.com;+1 202 555 0100\n"
        f"Linus;Torvalds {tag};not an email;+358 9 123 4567\n"
        f"Мария;Кюри {tag};marie.{tag}@example.com;+33 1 23 45 67 89\n"
    )
    page.get_by_label("Import contacts (CSV or vCard)").set_input_files(
        files=FilePayload(name="people.csv", mimeType="text/csv", buffer=content.encode())
    )
    status = page.get_by_test_id("import-status")
    expect(status).to_contain_text("Import done: 4 rows — 3 imported, 1 rejected.", timeout=ms(30))
    rejected = page.get_by_role("table", name="Rejected rows")
    expect(rejected.get_by_role("row")).to_have_count(2)
    expect(rejected.get_by_role("row").nth(1)).to_contain_text("4email")
    screenshot(page, "import-done")

    search(page, tag)
    expect(row(page, tag)).to_have_count(3)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV of the contacts found").click()
    path = download.value.path()
    exported = [record.fields for record in read_csv(path.read_text(encoding="utf-8"))]
    assert sorted(contact["email"] for contact in exported) == sorted(
        f"{name}.{tag}@example.com" for name in ("ada", "grace", "marie")
    )
    assert {"first_name": "Мария", "last_name": f"Кюри {tag}", "email": f"marie.{tag}@example.com",
            "phone": "+33 1 23 45 67 89"} in exported  # fmt: skip
    assert refused == [], "the Content-Security-Policy refused what the app needs"
