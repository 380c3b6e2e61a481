"""Reasoning and tool calls on the chat page in real Chromium (issue 13, part 4): the
Thinking block shows before the first text token and folds away when the text begins,
is kept on reload and in stored conversations; tool calls show as cards; hostile
reasoning stays inert."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import with_options
from tests.servers import Server
from tests.sse_client import chat

REASONING = ("The user asks for the answer. I recall that it is forty-two. "
             "Let me check that once more before I write it down.")

# Resolves with the page as it is the first time the last answer's Thinking block has
# text: a MutationObserver callback runs right after the DOM change that showed it, so
# this is the state at that moment, not at some later poll.
WATCH_FIRST_THINKING = """() => { window.__firstThinking = new Promise((resolve) => {
  const observer = new MutationObserver(() => {
    const answers = document.querySelectorAll('[data-testid=message-assistant]');
    const answer = answers[answers.length - 1];
    const block = answer && answer.querySelector('[data-testid=thinking]');
    const thinking = block && block.querySelector('[data-testid=thinking-content]');
    if (!thinking || !thinking.textContent.trim()) return;
    observer.disconnect();
    resolve({
      thinking: thinking.textContent.trim(),
      answer: answer.querySelector('[data-testid=answer-content]').textContent.trim(),
      open: block.open,
      visible: !block.hidden && block.getBoundingClientRect().height > 0,
      label: block.querySelector('[data-testid=thinking-label]').textContent,
    });
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                   attributes: true});
}); }"""

# The same for the first tool call card of the last answer.
WATCH_FIRST_CARD = """() => { window.__firstCard = new Promise((resolve) => {
  const observer = new MutationObserver(() => {
    const answers = document.querySelectorAll('[data-testid=message-assistant]');
    const answer = answers[answers.length - 1];
    const card = answer && answer.querySelector('[data-testid=tool-call]');
    if (!card) return;
    observer.disconnect();
    resolve({
      name: card.querySelector('[data-testid=tool-call-name]').textContent,
      arguments: card.querySelector('[data-testid=tool-call-arguments]').textContent,
      status: card.dataset.status,
    });
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}); }"""


def _send(page: Page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def _answer(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("message-assistant").last


def _words(text: str) -> str:
    return " ".join(text.split())


def test_thinking_shows_before_the_text_collapses_when_it_starts_and_survives_reload(
        page: Page, page_server: Server) -> None:
    page.goto(page_server.url)
    # 80 ms before each piece: the text's first token comes ~20 pieces after the
    # reasoning's first one; what is asserted is the order, never the time.
    with_options(page, reasoning=REASONING, text="The answer is **42**.", delay_ms=80)
    page.evaluate(WATCH_FIRST_THINKING)
    _send(page, "What is the answer?")
    first: dict[str, Any] = page.evaluate("window.__firstThinking")
    assert first["thinking"].startswith("The"), first
    assert first["answer"] == "", "the reasoning shows before any text of the answer"
    assert first["open"] is True and first["visible"] is True, first
    assert first["label"] == "Thinking…"

    answer = _answer(page)
    block = answer.get_by_test_id("thinking")
    expect(answer.get_by_test_id("answer-content")).to_contain_text("The answer is 42.")
    expect(block).to_have_js_property("open", False)  # folded away when the text began
    expect(answer.get_by_test_id("thinking-label")).to_have_text(re.compile(r"^Thought for "))
    expect(answer).to_have_attribute("data-status", "complete")
    block.get_by_test_id("thinking-summary").click()  # and it opens again
    expect(block).to_have_js_property("open", True)
    expect(answer.get_by_test_id("thinking-content")).to_have_text(REASONING)

    page.reload()  # the stored conversation: the reasoning is kept, its time is not known
    answer = _answer(page)
    block = answer.get_by_test_id("thinking")
    expect(answer.get_by_test_id("answer-content")).to_have_text("The answer is 42.")
    expect(block).to_be_visible()
    expect(block).to_have_js_property("open", False)
    expect(answer.get_by_test_id("thinking-label")).to_have_text("Thought")
    block.get_by_test_id("thinking-summary").click()
    expect(answer.get_by_test_id("thinking-content")).to_have_text(REASONING)
    assert page.problems == []


def test_reload_while_thinking_replays_the_reasoning_once(page: Page, page_server: Server) -> None:
    reasoning = " ".join(f"r{n}" for n in range(60))
    page.goto(page_server.url)
    with_options(page, reasoning=reasoning, text="Done thinking.", delay_ms=40)
    _send(page, "Think out loud")
    expect(_answer(page).get_by_test_id("thinking-content")).to_contain_text("r5 ")
    expect(_answer(page).get_by_test_id("answer-content")).to_have_text("")
    page.reload()
    answer = _answer(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(answer.get_by_test_id("answer-content")).to_have_text("Done thinking.")
    block = answer.get_by_test_id("thinking")
    if not block.evaluate("b => b.open"):
        block.get_by_test_id("thinking-summary").click()
    expect(answer.get_by_test_id("thinking-content")).to_contain_text("r59")
    shown = answer.get_by_test_id("thinking-content").inner_text()
    assert _words(shown) == reasoning, "every piece of reasoning once, in order"


def test_a_tool_call_shows_as_a_card_with_its_arguments(page: Page, page_server: Server) -> None:
    arguments = {"city": "Paris", "unit": "celsius", "days": [1, 2]}
    page.goto(page_server.url)
    with_options(page, text="Let me check.", delay_ms=40,
                 tool_calls=[{"name": "get_weather", "arguments": arguments}])
    page.evaluate(WATCH_FIRST_CARD)
    _send(page, "Weather in Paris?")
    first: dict[str, Any] = page.evaluate("window.__firstCard")
    # The card shows with the call's first piece, before the arguments are complete.
    assert first["name"] == "get_weather" and first["status"] == "streaming", first
    assert json.dumps(arguments).startswith(first["arguments"]), first
    assert first["arguments"] != json.dumps(arguments), first

    answer = _answer(page)
    expect(answer).to_have_attribute("data-status", "complete")
    card = answer.get_by_test_id("tool-call")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "complete")
    expect(card.get_by_test_id("tool-call-name")).to_have_text("get_weather")
    expect(card.get_by_test_id("tool-call-arguments")).to_have_text(json.dumps(arguments, indent=2))
    expect(answer.get_by_test_id("answer-content")).to_have_text("Let me check.")
    assert page.problems == []

    # The result goes back as a `tool` message (the page runs no tools): on opening the
    # conversation it shows under its call.
    conversation_id = page.url.rsplit("/", 1)[-1]
    stored = httpx.get(f"{page_server.url}/api/conversations/{conversation_id}").json()
    call = stored["messages"][-1]["tool_calls"][0]
    chat(page_server.url, {"conversation_id": conversation_id, "model": "scripted",
                           "messages": [{"role": "tool", "tool_call_id": call["id"],
                                         "content": "<b>18 °C</b>, sunny"}],
                           "options": {"text": "It is sunny."}})
    page.reload()
    card = page.get_by_test_id("tool-call")
    expect(card.get_by_test_id("tool-call-arguments")).to_have_text(json.dumps(arguments, indent=2))
    expect(card.get_by_test_id("tool-result")).to_contain_text("<b>18 °C</b>, sunny")
    expect(card.locator("b")).to_have_count(0)  # a tool's output is text, never HTML
    expect(_answer(page).get_by_test_id("answer-content")).to_have_text("It is sunny.")


HOSTILE_REASONING = """Thinking about <script>window.__pwned = 'script'; alert('script')</script> it.

<img src=x onerror="window.__pwned = 'onerror'; alert('onerror')">

<a href="javascript:window.__pwned='link';alert('link')">html link</a> and [md link](javascript:alert('md'))

<svg onload="window.__pwned='svg';alert('svg')"><circle r="5"/></svg>

<iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>

<div onmouseover="window.__pwned='hover';alert('hover')">hover me</div>

Reasoned.
"""


def _assert_reasoning_inert(page: Page, answer, dialogs: list[str]) -> None:  # type: ignore[no-untyped-def]
    content = answer.get_by_test_id("thinking-content")
    expect(content).to_contain_text("Reasoned.")
    content.get_by_text("hover me").hover()
    for selector in ("script", "iframe", "svg", "img", "object", "embed"):
        assert content.locator(selector).count() == 0, selector
    handlers = answer.evaluate(
        "(root) => [...root.querySelectorAll('*')].flatMap(e => [...e.attributes]"
        ".filter(a => a.name.startsWith('on')).map(a => `${e.tagName} ${a.name}`))")
    assert handlers == []
    hrefs = content.locator("a").evaluate_all("(links) => links.map(a => a.getAttribute('href'))")
    assert not any(h and re.match(r"\s*(javascript|data):", h, re.I) for h in hrefs), hrefs
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    assert dialogs == []


def test_hostile_reasoning_stays_inert_live_and_stored(page: Page, page_server: Server) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(page_server.url)
    with_options(page, reasoning=HOSTILE_REASONING, text="Answer.", delay_ms=5)
    _send(page, "Think evil thoughts")
    answer = _answer(page)
    expect(answer).to_have_attribute("data-status", "complete")
    block = answer.get_by_test_id("thinking")
    if not block.evaluate("b => b.open"):
        block.get_by_test_id("thinking-summary").click()
    _assert_reasoning_inert(page, answer, dialogs)

    page.reload()
    answer = _answer(page)
    answer.get_by_test_id("thinking-summary").click()
    _assert_reasoning_inert(page, answer, dialogs)
