"""The chat page against a server with API keys (issue 8, "Keys and isolation"): the
sign-in form, the HttpOnly cookie that then authenticates fetch and EventSource alike,
isolation between keys, a session that ends under the page, and sign out."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import with_options
from tests.servers import Server, start_server

KEY_A = "alpha-key-0123456789"
KEY_B = "beta-key-9876543210"
REJECTED = "That key was not accepted."


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[Server]:
    with start_server("--model", "scripted",
                      env={"TOKENRELAY_API_KEYS": f"{KEY_A},{KEY_B}"}) as running:
        yield running


@pytest.fixture
def new_page(browser) -> Iterator[Callable[[], Page]]:  # type: ignore[no-untyped-def]
    """Pages in fresh browser contexts (each its own cookie jar)."""
    contexts = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        # A 401 is logged by Chromium as a failed resource: only CSP reports count here.
        page.problems = []
        page.on("console", lambda m: m.type == "error" and "Content Security Policy" in m.text
                and page.problems.append(m.text))
        return page

    yield make
    for context in contexts:
        context.close()


def _form(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("dialog", name="Sign in to tokenrelay")


def _sign_in(page: Page, key: str) -> None:
    field = _form(page).get_by_label("API key")
    field.fill(key)
    field.press("Enter")


def _signed_in_page(new_page: Callable[[], Page], server: Server, key: str) -> Page:
    page = new_page()
    page.goto(server.url)
    _sign_in(page, key)
    expect(_form(page)).to_be_hidden()
    expect(page.get_by_test_id("model-select")).to_have_value("scripted", timeout=30_000)
    return page


def _ask(page: Page, text: str, answer: str) -> str:
    """Send `text`; the scripted model answers `answer`. Returns the conversation id."""
    with_options(page, text=answer, delay_ms=20)
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")
    answer = page.get_by_test_id("message-assistant").last
    expect(answer).not_to_have_attribute("data-status", "streaming", timeout=20_000)
    assert answer.get_attribute("data-status") == "complete", answer.inner_text()
    expect(page).to_have_url(re.compile(r"/c/conv_[0-9a-f]+$"))
    return page.url.rsplit("/", 1)[-1]


def test_the_form_asks_for_a_key_and_loads_nothing_until_one_is_accepted(
        new_page: Callable[[], Page], keyed_server: Server) -> None:
    page = new_page()
    history: list[str] = []
    page.on("request", lambda r: "/api/conversations" in r.url and history.append(r.url))
    page.goto(keyed_server.url)
    form = _form(page)
    expect(form).to_be_visible()
    field = form.get_by_label("API key")
    expect(field).to_have_attribute("type", "password")
    expect(field).to_be_focused()
    expect(page.get_by_test_id("sign-out")).to_be_visible()

    _sign_in(page, "not-a-key")
    expect(form.get_by_role("alert")).to_have_text(REJECTED)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(form).to_be_visible()
    page.keyboard.press("Escape")  # the page can do nothing without a key
    expect(form).to_be_visible()
    assert history == [], "no history is asked for before a key is accepted"
    expect(page.get_by_test_id("conversation-item")).to_have_count(0)
    assert page.evaluate("JSON.stringify({...localStorage}) + document.cookie") == "{}"
    assert page.problems == []


def test_the_right_key_signs_in_streams_an_answer_and_stays_signed_in(
        new_page: Callable[[], Page], keyed_server: Server) -> None:
    page = _signed_in_page(new_page, keyed_server, KEY_A)
    conversation_id = _ask(page, "Hello with a key", "Streamed **behind** a key.")
    expect(page.get_by_test_id("message-assistant").last.locator("strong")).to_have_text("behind")
    # The key is in an HttpOnly cookie: nothing a script can read holds it.
    stored = page.evaluate("JSON.stringify({...localStorage, ...sessionStorage}) + document.cookie")
    assert KEY_A not in stored
    cookie = next(c for c in page.context.cookies() if c["name"] == "tokenrelay_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.reload()
    expect(page.get_by_test_id("message-assistant").last).to_contain_text("Streamed behind a key.")
    expect(_form(page)).to_be_hidden()
    expect(page.locator(f"[data-testid=conversation-item][data-id='{conversation_id}']")).to_be_visible()
    assert page.problems == []


# Runs in the page: start an answer with fetch (the cookie goes along), leave that
# response, and read the same stream with a plain EventSource, which can send no header.
EVENT_SOURCE = """async (text) => {
  const response = await fetch('/api/chat', {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({messages: [{role: 'user', content: 'via EventSource'}],
                          options: {text, delay_ms: 30}}),
  });
  const streamId = response.headers.get('X-Stream-Id');
  await response.body.cancel();
  return await new Promise((resolve) => {
    const source = new EventSource('/api/streams/' + encodeURIComponent(streamId));
    const seen = [];
    let deltas = '';
    for (const type of ['start', 'delta', 'done', 'error']) {
      source.addEventListener(type, (event) => {
        seen.push(type);
        if (type === 'delta') deltas += JSON.parse(event.data).text;
        if (type === 'done' || type === 'error') {
          source.close();
          resolve({streamId, seen: [...new Set(seen)], text: deltas});
        }
      });
    }
    source.onerror = () => { source.close(); resolve({streamId, seen, text: deltas, failed: true}); };
  });
}"""

# Runs in the page: does an EventSource on this stream get anything?
EVENT_SOURCE_OF = """(streamId) => new Promise((resolve) => {
  const source = new EventSource('/api/streams/' + encodeURIComponent(streamId));
  source.addEventListener('start', () => { source.close(); resolve('read it'); });
  source.onerror = () => { source.close(); resolve('refused'); };
})"""


def test_an_event_source_reads_the_stream_with_the_cookie_and_only_its_owner(
        new_page: Callable[[], Page], keyed_server: Server) -> None:
    page = _signed_in_page(new_page, keyed_server, KEY_A)
    text = "one two three four five six seven eight"
    result = page.evaluate(EVENT_SOURCE, text)
    assert result.get("failed") is None, result
    assert result["seen"] == ["start", "delta", "done"]
    assert result["text"] == text

    other = _signed_in_page(new_page, keyed_server, KEY_B)
    assert other.evaluate(EVENT_SOURCE_OF, result["streamId"]) == "refused"
    stranger = new_page()
    stranger.goto(keyed_server.url)
    expect(_form(stranger)).to_be_visible()
    assert stranger.evaluate(EVENT_SOURCE_OF, result["streamId"]) == "refused"


def test_another_key_does_not_see_the_first_keys_conversations(
        new_page: Callable[[], Page], keyed_server: Server) -> None:
    alpha = _signed_in_page(new_page, keyed_server, KEY_A)
    conversation_id = _ask(alpha, "Alpha's private question", "Alpha's answer.")
    expect(alpha.get_by_test_id("conversation-item").first).to_contain_text("Alpha's private question")

    beta = _signed_in_page(new_page, keyed_server, KEY_B)
    expect(beta.get_by_test_id("conversation-list")).not_to_contain_text("Alpha's private question")
    expect(beta.locator(f"[data-testid=conversation-item][data-id='{conversation_id}']")).to_have_count(0)
    beta.goto(f"{keyed_server.url}/c/{conversation_id}")
    expect(beta.get_by_test_id("error-banner")).to_contain_text("does not exist")
    expect(beta.get_by_test_id("message-user")).to_have_count(0)
    expect(_form(beta)).to_be_hidden()


def test_a_session_that_ends_brings_the_form_back_keeping_the_draft(
        new_page: Callable[[], Page], keyed_server: Server) -> None:
    page = _signed_in_page(new_page, keyed_server, KEY_A)
    conversation_id = _ask(page, "Before the cookie went", "Kept answer.")
    page.get_by_test_id("new-chat").click()
    page.get_by_test_id("composer").fill("a draft I am still writing")
    page.context.clear_cookies()  # as when the cookie expires
    page.locator(f"[data-testid=conversation-item][data-id='{conversation_id}'] a").click()

    form = _form(page)
    expect(form).to_be_visible()
    expect(form).to_contain_text("Sign in again")
    expect(page.get_by_test_id("error-banner")).to_have_count(0)
    _sign_in(page, KEY_A)
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("message-assistant").last).to_contain_text("Kept answer.")
    expect(page.get_by_test_id("composer")).to_have_value("a draft I am still writing")


def test_sign_out_shows_the_form_and_forgets_the_history_on_screen(
        new_page: Callable[[], Page], keyed_server: Server) -> None:
    page = _signed_in_page(new_page, keyed_server, KEY_A)
    _ask(page, "Something to sign out from", "Answer.")
    page.get_by_test_id("sign-out").click()
    expect(_form(page)).to_be_visible()
    expect(page.get_by_test_id("conversation-item")).to_have_count(0)
    expect(page.get_by_test_id("message-user")).to_have_count(0)
    expect(page).to_have_url(f"{keyed_server.url}/")
    assert [c for c in page.context.cookies() if c["name"] == "tokenrelay_session"] == []
    page.reload()
    expect(_form(page)).to_be_visible()
    assert page.problems == []


def test_no_form_and_no_sign_out_when_the_server_needs_no_key(
        new_page: Callable[[], Page], page_server: Server) -> None:
    page = new_page()
    page.goto(page_server.url)
    expect(page.get_by_test_id("model-select")).to_have_value("scripted", timeout=30_000)
    expect(_form(page)).to_be_hidden()
    expect(page.get_by_test_id("sign-out")).to_be_hidden()
