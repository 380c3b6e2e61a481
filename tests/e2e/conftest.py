"""Real Chromium (Debian's package) driven by Playwright, against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread
    while it is open, and the asyncio tests after it need the thread's loop free."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found: `apt-get install chromium` (make test does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS,
                                             headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_server() -> Iterator[Server]:
    with start_server("--model", "scripted") as running:
        yield running


@pytest.fixture
def page(browser, page_server: Server):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []  # console errors and CSP violations: none expected
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    yield page
    context.close()


def with_options(page, **options: object) -> None:  # type: ignore[no-untyped-def]
    """Make the page's next chats ask the scripted model for exactly this."""

    def route(route, request):  # type: ignore[no-untyped-def]
        if request.method == "POST":
            body = json.loads(request.post_data or "{}")
            body["options"] = {**body.get("options", {}), **options}
            route.continue_(post_data=json.dumps(body))
        else:
            route.continue_()

    page.unroute("**/api/chat")
    page.route("**/api/chat", route)
