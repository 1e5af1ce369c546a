"""The whole stack behind the gateway, and real Chromium (Debian's, driven by Playwright) to use it."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.commands import start_command_consumer
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
    def __init__(self, url: str, notifier: ServiceProcess) -> None:
        self.url = url
        self.notifier = notifier


@pytest.fixture(scope="module")
def live_stack(infra: Infra) -> Iterator[LiveStack]:
    if not (ROOT / "services/web/dist/index.html").exists():
        pytest.fail("build the web app first: make web")
    stack = Stack(infra)
    gateway_port = free_port()
    origin = f"http://127.0.0.1:{gateway_port}"
    try:
        command_api = start_command_api(stack.launch, "e2e-command-api", create_reply_delay_seconds=CREATE_DELAY)
        start_relay(stack.launch, "e2e-relay", relay_poll_seconds=0.2)
        start_command_consumer(stack.launch, "e2e-commands", create_reply_delay_seconds=CREATE_DELAY)
        start_history_worker(stack.launch, "e2e-history-worker")
        query_api = start_query_api(stack.launch, "e2e-query-api")
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
        yield LiveStack(origin, notifier)
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


def open_page(browser: Browser, contexts: list[BrowserContext], url: str, width: int = 1280) -> Page:
    """A page in a browser context of its own: a colleague on another machine."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    contexts.append(context)
    page = context.new_page()
    page.goto(url)
    page.get_by_test_id("connection-status").and_(page.locator("[data-status=live]")).wait_for()
    return page


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
