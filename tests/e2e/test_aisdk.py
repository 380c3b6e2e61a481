"""The Vercel AI SDK's own `useChat` (@ai-sdk/react) in real Chromium against a real
tokenrelay: a small React page (tests/e2e/aisdk_app/, built with Vite) on tokenrelay's
origin. Playwright fulfils the page's files from its build under /aisdk-test/; its API
calls go through to tokenrelay, as they would behind one origin in production."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.servers import Server

APP = Path(__file__).parent / "aisdk_app"
BUILD = APP / "dist"
PREFIX = "/aisdk-test/"
WORDS = [f"word{i} " for i in range(120)]


def _stale() -> bool:
    if not (BUILD / "index.html").exists():
        return True
    sources = [APP / "index.html", APP / "vite.config.js", APP / "package-lock.json",
               *(APP / "src").rglob("*")]
    built = (BUILD / "index.html").stat().st_mtime
    return any(source.stat().st_mtime > built for source in sources)


@pytest.fixture(scope="module")
def app_build() -> Path:
    """The test app's build; rebuilt here when its sources are newer (`make test`
    installs and builds it: `make aisdk-app`)."""
    if _stale():
        npm = shutil.which("npm")
        if npm is None or not (APP / "node_modules").exists():
            pytest.skip("The AI SDK test app is not built: `make aisdk-app` (make test does this)")
        subprocess.run([npm, "run", "build"], cwd=APP, check=True, capture_output=True,
                       timeout=300)
    return BUILD


def _open(page: Page, server: Server, build: Path, chat_id: str, **options: Any) -> None:
    """The test app for `chat_id`, asking the scripted model for `options`."""

    def serve(route: Route) -> None:
        path = urlsplit(route.request.url).path.removeprefix(PREFIX) or "index.html"
        file = (build / path).resolve()
        if build.resolve() not in file.parents or not file.is_file():
            route.fulfill(status=404)
        else:
            route.fulfill(path=file)

    page.context.route(f"{server.url}{PREFIX}**", serve)
    query = urlencode({"chat": chat_id, "options": json.dumps(options)})
    page.goto(f"{server.url}{PREFIX}?{query}")
    expect(page.locator("#status")).to_have_attribute("data-status", "ready")


def _send(page: Page, text: str) -> None:
    page.locator("#prompt").fill(text)
    page.locator("#send").click()


def _answer_text(page: Page) -> str:
    return page.locator("li.assistant p.text").last.text_content() or ""


def _wait_words(page: Page, count: int) -> None:
    """Until the answer on screen has `count` words, and not yet all of them."""
    page.wait_for_function(
        """([count, total]) => {
          const texts = [...document.querySelectorAll('li.assistant p.text')];
          const text = texts.pop()?.textContent ?? '';
          const words = text.split(/\\s+/).filter(Boolean).length;
          return words >= count && words < total;
        }""", arg=[count, len(WORDS)])


def _stored_answer(server: Server, chat_id: str, status: str) -> dict[str, Any]:
    """The chat's last answer once the store has it as `status` (its final write may
    land just after the stream's end)."""
    chat = httpx.get(f"{server.url}/api/aisdk/chat/{chat_id}").json()
    url = f"{server.url}/api/conversations/{chat['conversation_id']}"
    deadline = time.monotonic() + 30
    while (answer := httpx.get(url).json()["messages"][-1])["status"] != status:
        assert time.monotonic() < deadline, f"the answer is {answer['status']}, not {status}"
        time.sleep(0.05)
    return answer  # type: ignore[no-any-return]


def test_text_and_reasoning_stream_in(page: Page, page_server: Server, app_build: Path) -> None:
    text = "".join(WORDS[:30])
    _open(page, page_server, app_build, uuid.uuid4().hex,
          reasoning="Weighing it up first.", text=text, delay_ms=30)
    _send(page, "Think, then answer")
    expect(page.locator("li.user")).to_have_text("Think, then answer")
    expect(page.locator("li.assistant p.reasoning")).to_have_text("Weighing it up first.")
    _wait_words(page, 3)  # the text grows on screen, word by word
    expect(page.locator("#status")).to_have_attribute("data-status", "streaming")
    expect(page.locator("li.assistant p.text")).to_have_text(text, timeout=30_000)
    expect(page.locator("#status")).to_have_attribute("data-status", "ready")
    expect(page.locator("li.assistant p.text")).to_have_attribute("data-state", "done")
    assert page.problems == []


def test_a_reload_mid_answer_continues_the_same_answer_to_the_end(
        page: Page, page_server: Server, app_build: Path) -> None:
    chat_id, text = uuid.uuid4().hex, "".join(WORDS)
    _open(page, page_server, app_build, chat_id, text=text, delay_ms=50)
    _send(page, "A long one, please")
    _wait_words(page, 5)
    page.reload()
    # After the reload: the stored question, and the answer resumed from its start
    # while the model is still writing it.
    expect(page.locator("li.user")).to_have_text("A long one, please")
    expect(page.locator("#status")).to_have_attribute("data-status", "streaming")
    expect(page.locator("li.assistant p.text")).to_have_text(text, timeout=30_000)
    expect(page.locator("#status")).to_have_attribute("data-status", "ready")
    expect(page.locator("li")).to_have_count(2)  # nothing twice
    stored = _stored_answer(page_server, chat_id, "complete")
    assert stored["content"] == text
    assert page.locator("li.assistant").get_attribute("data-id") == stored["id"]
    assert page.problems == []


def test_stop_stops_the_model_and_the_answer_is_stored_as_cancelled(
        page: Page, page_server: Server, app_build: Path) -> None:
    chat_id = uuid.uuid4().hex
    _open(page, page_server, app_build, chat_id, text="".join(WORDS), delay_ms=50)
    _send(page, "Go on and on")
    _wait_words(page, 3)
    page.locator("#stop").click()
    expect(page.locator("#status")).to_have_attribute("data-status", "ready")
    shown = _answer_text(page)
    stored = _stored_answer(page_server, chat_id, "cancelled")
    assert stored["content"] == shown and 3 <= len(shown.split()) < len(WORDS)
    assert page.problems == []


def test_stop_after_a_reload_stops_the_resumed_answer(
        page: Page, page_server: Server, app_build: Path) -> None:
    chat_id = uuid.uuid4().hex
    _open(page, page_server, app_build, chat_id, text="".join(WORDS), delay_ms=50)
    _send(page, "Go on and on")
    _wait_words(page, 3)
    page.reload()
    _wait_words(page, 6)
    page.locator("#stop").click()
    expect(page.locator("#status")).to_have_attribute("data-status", "ready")
    stored = _stored_answer(page_server, chat_id, "cancelled")
    assert stored["content"] == _answer_text(page)
    assert page.problems == []
