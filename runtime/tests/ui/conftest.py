"""Fixtures of the UI tests: a headless Chromium page and aiohttp servers (see ui_testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from .ui_testing import CHROMIUM, CHROMIUM_ARGUMENTS, VIEWPORT, ServerThread


@pytest.fixture
def serve() -> Iterator:
    started: list[ServerThread] = []

    def start(app: web.Application) -> ServerThread:
        server = ServerThread(app)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API keeps an event loop running on the main thread,
    # which asyncio tests collected after a browser module could not start their own loop under.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make deps installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGUMENTS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, serve):
    """A fresh page; console errors and refused requests (CSP, network) fail the test.

    It depends on `serve` so that servers stop only after the page is closed.
    """
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    context.close()
    # API errors the UI shows to the user (a 422 from the form, say) are also logged by the browser.
    unexpected = [problem for problem in problems if "the server responded with a status of" not in problem]
    assert not unexpected, "the page reported errors:\n" + "\n".join(unexpected)
