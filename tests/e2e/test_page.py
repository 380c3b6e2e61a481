"""The chat page in real Chromium: streaming, stop, resume on reload, history, errors,
and hostile model output staying inert."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import with_options
from tests.servers import Server
from tests.sse_client import chat

ANSWER = "# Title\n\nSome **bold** text.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n"


def _send(page: Page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def _answer(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("message-assistant").last


def test_send_streams_markdown_with_a_cursor_then_stats(page: Page, page_server: Server) -> None:
    page.goto(page_server.url)
    with_options(page, text=ANSWER, delay_ms=60)
    _send(page, "Show me markdown")
    expect(page.get_by_test_id("message-user").last).to_contain_text("Show me markdown")
    expect(_answer(page).get_by_test_id("cursor")).to_be_visible()
    expect(_answer(page).get_by_test_id("cursor")).to_have_count(0, timeout=20_000)
    answer = _answer(page)
    expect(answer.locator("h1")).to_have_text("Title")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("li")).to_have_count(2)
    expect(answer.locator("pre code")).to_contain_text("print('hi')")
    expect(answer.get_by_test_id("copy-code")).to_be_visible()
    expect(answer.get_by_test_id("stats")).to_contain_text(re.compile(r"tok", re.I))
    expect(page).to_have_url(re.compile(r"/c/conv_[0-9a-f]+$"))
    # Sent right after the page opened: the new chat tops the sidebar even though the
    # sidebar's first page was still loading.
    expect(page.get_by_test_id("conversation-item").first).to_contain_text("Show me markdown")
    assert page.problems == []


def test_shift_enter_is_a_new_line_not_a_send(page: Page, page_server: Server) -> None:
    page.goto(page_server.url)
    composer = page.get_by_test_id("composer")
    composer.fill("line one")
    composer.press("Shift+Enter")
    composer.type("line two")
    assert composer.input_value() == "line one\nline two"
    expect(page.get_by_test_id("message-user")).to_have_count(0)


def test_stop_keeps_the_partial_answer_marked_stopped(page: Page, page_server: Server) -> None:
    page.goto(page_server.url)
    with_options(page, text="word " * 400, delay_ms=50)
    _send(page, "Talk for a while")
    expect(_answer(page).get_by_test_id("answer-content")).to_contain_text("word word word")
    page.get_by_test_id("stop").click()
    expect(_answer(page).get_by_test_id("status-badge")).to_be_visible()
    expect(_answer(page).get_by_test_id("status-badge")).to_contain_text(re.compile("stop", re.I))
    expect(_answer(page).get_by_test_id("cursor")).to_have_count(0)
    conversation_id = page.url.rsplit("/", 1)[-1]
    stored = httpx.get(f"{page_server.url}/api/conversations/{conversation_id}").json()
    answer = stored["messages"][-1]
    assert answer["status"] == "cancelled"
    assert 0 < len(answer["content"]) < len("word " * 400)


def test_escape_stops_too(page: Page, page_server: Server) -> None:
    page.goto(page_server.url)
    with_options(page, text="word " * 400, delay_ms=50)
    _send(page, "Talk")
    expect(_answer(page).get_by_test_id("answer-content")).to_contain_text("word word")
    page.keyboard.press("Escape")
    expect(_answer(page).get_by_test_id("status-badge")).to_contain_text(re.compile("stop", re.I))


def test_reload_mid_answer_resumes_without_duplicated_text(page: Page, page_server: Server) -> None:
    text = "".join(f"w{n} " for n in range(120))
    page.goto(page_server.url)
    with_options(page, text=text, delay_ms=40)
    _send(page, "Count")
    expect(_answer(page).get_by_test_id("answer-content")).to_contain_text("w10 ")
    page.reload()
    expect(_answer(page)).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(_answer(page).get_by_test_id("cursor")).to_have_count(0)
    shown = _answer(page).get_by_test_id("answer-content").inner_text()
    assert " ".join(shown.split()) == text.strip(), "every token once, in order"


def test_a_conversation_opens_at_its_own_url(page: Page, page_server: Server) -> None:
    received = chat(page_server.url, {"messages": [{"role": "user", "content": "Saved question"}],
                                      "model": "scripted", "options": {"text": "Saved **answer**"}})
    conversation_id = received.named("start")[0]["conversation_id"]
    page.goto(f"{page_server.url}/c/{conversation_id}")
    expect(page.get_by_test_id("message-user")).to_contain_text("Saved question")
    expect(_answer(page).locator("strong")).to_have_text("answer")
    expect(page.get_by_test_id("conversation-item").first).to_be_visible()


def test_an_upstream_error_is_shown_with_a_retry(page: Page, page_server: Server) -> None:
    page.goto(page_server.url)
    with_options(page, text="partial answer then failure", fail_after=2)
    _send(page, "Fail please")
    banner = page.get_by_test_id("error-banner").last
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(re.compile("upstream|fail", re.I))
    expect(page.get_by_test_id("retry").last).to_be_visible()
    expect(_answer(page).get_by_test_id("answer-content")).to_contain_text("partial answer")


def test_the_page_is_served_with_a_strict_csp(page_server: Server) -> None:
    response = httpx.get(page_server.url)
    assert httpx.head(page_server.url).status_code == 200, "monitors and link checkers use HEAD"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "object-src 'none'" in policy and "frame-src 'none'" in policy
    assert "<script>" not in response.text.replace(" ", "").lower().replace("<scripttype", "")


HOSTILE = """Hostile content follows.

<script>window.__pwned = 'script'</script>

<img src="x" onerror="window.__pwned = 'onerror'">

<a href="javascript:window.__pwned='link'">html link</a> and [md link](javascript:window.__pwned='md')

<svg onload="window.__pwned='svg'"><circle r="5"/></svg>

<iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>

<div onmouseover="window.__pwned='hover'">hover me</div>

<a href="data:text/html,<script>alert(1)</script>">data link</a>

![tracker](http://127.0.0.1:{port}/exfil?secret=stolen)

Done.
"""


def _assert_inert(page: Page, answer) -> None:  # type: ignore[no-untyped-def]
    content = answer.get_by_test_id("answer-content")
    expect(content).to_contain_text("Done.")
    content.get_by_text("hover me").hover()
    for selector in ("script", "iframe", "svg", "img", "object", "embed"):
        assert content.locator(selector).count() == 0, selector
    hrefs = content.locator("a").evaluate_all("(links) => links.map(a => a.getAttribute('href'))")
    assert not any(h and re.match(r"\s*(javascript|data):", h, re.I) for h in hrefs), hrefs
    handlers = content.evaluate(
        "(root) => [...root.querySelectorAll('*')].flatMap(e => [...e.attributes]"
        ".filter(a => a.name.startsWith('on')).map(a => a.name))")
    assert handlers == []
    assert page.evaluate("window.__pwned") is None
    # The image is shown as a link to its address, never loaded.
    expect(content.locator("a[href*='/exfil']")).to_have_count(1)


def test_hostile_output_stays_inert_live_and_in_history(page: Page, page_server: Server) -> None:
    port = page_server.url.rsplit(":", 1)[-1]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(page_server.url)
    with_options(page, text=HOSTILE.format(port=port), delay_ms=5)
    _send(page, "Be evil")
    _assert_inert(page, _answer(page))
    conversation_id = page.url.rsplit("/", 1)[-1]
    page.goto(f"{page_server.url}/c/{conversation_id}")
    _assert_inert(page, _answer(page))
    assert not [url for url in requested if "/exfil" in url], "the image was never fetched"
