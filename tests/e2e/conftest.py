"""The whole stack behind the gateway, and real Chromium (Debian's, driven by Playwright) to use it."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.commands import start_command_consumer
from tests.support.identity import create_user, token_for
from tests.support.imports import start_import_worker
from tests.support.infra import Infra
from tests.support.notifier import start_notifier
from tests.support.processes import ROOT, TIMEOUT_FACTOR, ServiceProcess, free_port
from tests.support.read_side import start_history_worker, start_query_api
from tests.support.stack import Stack, start_command_api, start_relay

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CREATE_DELAY = 3.0 * TIMEOUT_FACTOR  # seconds a create's reply is deferred, while colleagues see the contact live


def ms(seconds: float) -> float:
    """A Playwright timeout: `seconds`, scaled by TEST_TIMEOUT_FACTOR, in milliseconds."""
    return seconds * TIMEOUT_FACTOR * 1000


class LiveStack:
    """The stack behind its gateway, and the people who use it: two editors and an admin."""

    def __init__(self, url: str, notifier: ServiceProcess, database_url: str) -> None:
        self.url = url
        self.notifier = notifier
        self.database_url = database_url
        self.alice = create_user(database_url, "editor")
        self.bob = create_user(database_url, "editor")
        self.admin = create_user(database_url, "admin")
        #: Writes a test makes outside the browser are a script's, signed in as an editor of its own.
        self.script = create_user(database_url, "editor")
        self.auth = {"Authorization": f"Bearer {token_for(self.script)}"}


@pytest.fixture(scope="module")
def live_stack(infra: Infra) -> Iterator[LiveStack]:
    if not (ROOT / "services/web/dist/index.html").exists():
        pytest.fail("build the web app first: make web")
    stack = Stack(infra)
    gateway_port = free_port()
    origin = f"http://127.0.0.1:{gateway_port}"
    app_origins = json.dumps([origin])  # the cookie's writes come from the gateway's origin
    try:
        command_api = start_command_api(
            stack.launch, "e2e-command-api", create_reply_delay_seconds=CREATE_DELAY, app_origins=app_origins
        )
        start_relay(stack.launch, "e2e-relay", relay_poll_seconds=0.2)
        start_command_consumer(stack.launch, "e2e-commands", create_reply_delay_seconds=CREATE_DELAY)
        start_history_worker(stack.launch, "e2e-history-worker")
        start_import_worker(stack.launch, "e2e-imports")
        query_api = start_query_api(stack.launch, "e2e-query-api", app_origins=app_origins)
        notifier_url, notifier = start_notifier(
            stack.launch, "e2e-notifier", notifier_allowed_origins=json.dumps([origin])
        )
        ports = {
            "gateway_port": gateway_port,
            "command_api_port": command_api.rsplit(":", 1)[1],
            "query_api_port": query_api.rsplit(":", 1)[1],
            "notifier_port": notifier_url.rsplit(":", 1)[1],
        }
        stack.launch("e2e-gateway", ["services/web/gateway.sh"], "/index.html", port=gateway_port, **ports)
        yield LiveStack(origin, notifier, infra.database_url)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module: Playwright's loop must be gone before other tests run asyncio."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        expect.set_options(timeout=ms(5))  # Playwright's default for an expectation, scaled
        yield browser
        browser.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def new_page(browser: Browser, contexts: list[BrowserContext], width: int = 1280) -> Page:
    """A blank page in a browser context of its own: a colleague on another machine."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    contexts.append(context)
    return context.new_page()


def record_refusals(page: Page) -> list[str]:
    """What the page's Content-Security-Policy refuses from now on (Chromium says so on its console)."""
    refused: list[str] = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    return refused


def sign_in(page: Page, user: dict[str, Any]) -> None:
    """Sign in on the page's sign-in form; done once the app shows the user's name."""
    page.get_by_label("Username").fill(user["username"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(user["name"], timeout=ms(10))


def wait_live(page: Page) -> None:
    page.get_by_test_id("connection-status").and_(page.locator("[data-status=live]")).wait_for()


def open_page(
    browser: Browser, contexts: list[BrowserContext], stack: LiveStack, user: dict[str, Any], width: int = 1280
) -> Page:
    """A page of the app signed in as `user`, live."""
    page = new_page(browser, contexts, width)
    page.goto(stack.url)
    sign_in(page, user)
    wait_live(page)
    return page


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
