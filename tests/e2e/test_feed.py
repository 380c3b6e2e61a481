"""Two pages of one owner in real Chromium (issue 14, point 6): what one does shows in
the other through the conversation feed, without a reload, and once only, across a
reconnect of the feed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import with_options
from tests.servers import Server, free_port, start_server

#: counts the feed's connections and errors, to know when the browser reconnected it
COUNT_FEED = """
(() => {
  const Native = window.EventSource;
  window.__feed = { opens: 0, errors: 0 };
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      if (String(url).includes("/api/conversations/events")) {
        this.addEventListener("open", () => { window.__feed.opens += 1; });
        this.addEventListener("error", () => { window.__feed.errors += 1; });
      }
    }
  };
})();
"""


@pytest.fixture
def two_pages(browser) -> Iterator[tuple[Page, Page]]:  # type: ignore[no-untyped-def]
    """Two browser contexts of the no-key server (one owner): two tabs as far as the
    server can tell, and either can go offline alone."""
    contexts = [browser.new_context(viewport={"width": 1200, "height": 800}) for _ in range(2)]
    pages = []
    for context in contexts:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.add_init_script(COUNT_FEED)
        page.problems = []
        page.on("console", lambda m, p=page: m.type == "error" and p.problems.append(m.text))
        pages.append(page)
    yield pages[0], pages[1]
    for context in contexts:
        context.close()


def _send(page: Page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def _feed_open(page: Page, opens: int = 1) -> None:
    page.wait_for_function("n => window.__feed && window.__feed.opens >= n", arg=opens)


def test_what_one_tab_does_shows_in_the_other(two_pages: tuple[Page, Page],
                                              page_server: Server) -> None:
    a, b = two_pages
    for page in (a, b):
        page.goto(page_server.url)
        _feed_open(page)
    b.evaluate("window.__notReloaded = true")

    # A new conversation in A appears in B's sidebar.
    with_options(a, text="First answer.", delay_ms=5)
    _send(a, "Rivers of the north")
    expect(b.get_by_test_id("conversation-item")).to_have_count(1)
    expect(b.get_by_test_id("conversation-item")).to_contain_text("Rivers of the north")
    expect(a.get_by_test_id("message-assistant")).to_have_attribute("data-status", "complete")

    # B opens it; A's next turn streams in on B, live.
    b.get_by_test_id("conversation-item").locator("a").click()
    expect(b.get_by_test_id("message-user")).to_have_count(1)
    with_options(a, text="word " * 80, delay_ms=40)
    _send(a, "Tell me more")
    expect(b.get_by_test_id("message-user")).to_have_count(2)
    expect(b.get_by_test_id("message-user").last).to_have_text("Tell me more")
    answer = b.get_by_test_id("message-assistant").last
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer.get_by_test_id("cursor")).to_be_visible()
    expect(answer.get_by_test_id("answer-content")).to_contain_text("word word word")
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(answer.get_by_test_id("answer-content")).to_have_text(("word " * 80).strip())
    # A sees its own turn once: its own change coming back on the feed adds nothing.
    expect(a.get_by_test_id("message-user")).to_have_count(2)
    expect(a.get_by_test_id("message-assistant")).to_have_count(2)

    # A renames it: B's sidebar and header follow.
    item = a.get_by_test_id("conversation-item").first
    item.hover()
    item.get_by_test_id("rename-conversation").click()
    a.get_by_test_id("rename-input").fill("Northern rivers")
    a.get_by_test_id("rename-input").press("Enter")
    expect(b.get_by_test_id("conversation-item")).to_have_text("Northern rivers")
    expect(b.get_by_test_id("chat-title")).to_have_text("Northern rivers")

    expect(b.get_by_test_id("message-user")).to_have_count(2)
    expect(b.get_by_test_id("conversation-item")).to_have_count(1)

    # A deletes it: gone from B's list, and B is back on a new chat.
    item.hover()
    item.get_by_test_id("delete-conversation").click()
    a.get_by_test_id("confirm-delete").click()
    expect(b.get_by_test_id("conversation-item")).to_have_count(0)
    expect(b.get_by_test_id("chat-title")).to_have_text("New chat")
    expect(b.get_by_test_id("message-user")).to_have_count(0)
    assert b.evaluate("window.__notReloaded") is True
    assert a.problems == []


def test_after_the_feed_reconnects_nothing_shows_twice(two_pages: tuple[Page, Page]) -> None:
    """The server restarts (a deploy): both feeds drop, the browser reconnects them,
    the new process cannot tell what was missed and says `reset`; the pages reload what
    they show, and the next turn still streams in on B, once."""
    a, b = two_pages
    port = free_port()
    database = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='tokenrelay-feed-')) / 'chat.db'}"
    args = ("--model", "scripted", "--database", database)
    with start_server(*args, port=port) as server:
        for page in (a, b):
            page.goto(server.url)
            _feed_open(page)
        with_options(a, text="Before the restart.", delay_ms=5)
        _send(a, "First question")
        expect(a.get_by_test_id("message-assistant")).to_have_attribute("data-status", "complete")
        b.get_by_test_id("conversation-item").locator("a").click()
        expect(b.get_by_test_id("answer-content")).to_have_text("Before the restart.")
    b.wait_for_function("() => window.__feed.errors >= 1")
    with start_server(*args, port=port):
        _feed_open(a, 2)
        _feed_open(b, 2)
        with_options(a, text="After the restart.", delay_ms=20)
        _send(a, "Second question")
        expect(b.get_by_test_id("answer-content").last).to_have_text("After the restart.",
                                                                      timeout=30_000)
        expect(b.get_by_test_id("message-user")).to_have_text(["First question", "Second question"])
        expect(b.get_by_test_id("message-assistant")).to_have_count(2)
        expect(b.get_by_test_id("conversation-item")).to_have_count(1)
        expect(a.get_by_test_id("message-user")).to_have_count(2)
        expect(a.get_by_test_id("message-assistant")).to_have_count(2)
