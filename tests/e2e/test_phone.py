"""The page at phone size in real Chromium (issue 14, point 7): New chat, Rename and
Delete a tap away, and a 100,000-character message collapsed with Show more."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import with_options
from tests.servers import Server

LONG_QUESTION = "a pasted log line that goes on\n" * 3226  # 100,006 characters
LONG_ANSWER = "A long answer line, again and again.\n" * 2703  # 100,011 characters


@pytest.fixture
def phone(browser) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    yield page
    context.close()


def _opacity(locator) -> float:  # type: ignore[no-untyped-def]
    return float(locator.evaluate("e => getComputedStyle(e.closest('.conv-actions')).opacity"))


def test_new_chat_rename_and_delete_are_a_tap_away(phone: Page, page_server: Server) -> None:
    for title in ("Phone first", "Phone second"):
        httpx.post(f"{page_server.url}/api/chat", timeout=30, json={
            "messages": [{"role": "user", "content": title}], "model": "scripted"})
    phone.goto(page_server.url)
    with_options(phone, text="Hello from the phone.")
    phone.get_by_test_id("composer").fill("Phone third")
    phone.get_by_test_id("composer").press("Enter")
    expect(phone.get_by_test_id("message-assistant")).to_have_attribute("data-status", "complete")

    # New chat from the header, without opening the conversation list.
    header_new = phone.get_by_test_id("header-new-chat")
    expect(header_new).to_be_visible()
    expect(phone.get_by_test_id("new-chat")).not_to_be_in_viewport()
    header_new.tap()
    expect(phone.get_by_test_id("chat-title")).to_have_text("New chat")
    expect(phone.get_by_test_id("message-user")).to_have_count(0)
    expect(phone).to_have_url(f"{page_server.url}/")

    # The list open: every conversation shows Rename and Delete, none of them open.
    phone.get_by_test_id("menu-toggle").tap()
    item = phone.get_by_test_id("conversation-item").filter(has_text="Phone first")
    rename = item.get_by_test_id("rename-conversation")
    delete = item.get_by_test_id("delete-conversation")
    for button in (rename, delete):
        expect(button).to_be_visible()
        assert _opacity(button) == 1.0
        box = button.bounding_box()
        assert box is not None and box["width"] >= 32 and box["height"] >= 32
    rename.tap()
    phone.get_by_test_id("rename-input").fill("Renamed on the phone")
    phone.get_by_test_id("rename-input").press("Enter")
    expect(phone.get_by_test_id("conversation-item").filter(has_text="Renamed on the phone")) \
        .to_have_count(1)
    other = phone.get_by_test_id("conversation-item").filter(has_text="Phone second")
    other.get_by_test_id("delete-conversation").tap()
    phone.get_by_test_id("confirm-delete").tap()
    expect(phone.get_by_test_id("conversation-item").filter(has_text="Phone second")) \
        .to_have_count(0)
    expect(phone.get_by_test_id("chat-title")).to_have_text("New chat")  # nothing was opened
    assert phone.problems == []


def test_a_100000_character_message_shows_collapsed(phone: Page, page_server: Server) -> None:
    phone.goto(page_server.url)
    with_options(phone, text=LONG_ANSWER)
    # Pasted, as a phone user would (fill() types it into the box too slowly).
    phone.get_by_test_id("composer").evaluate(
        "(e, text) => { e.value = text; e.dispatchEvent(new Event('input')); }", LONG_QUESTION)
    phone.get_by_test_id("send").tap()
    question = phone.get_by_test_id("message-user")
    expect(question.get_by_test_id("show-more")).to_have_text("Show more")
    assert len(question.locator(".bubble").text_content() or "") < 2000
    answer = phone.get_by_test_id("message-assistant")
    expect(answer).to_have_attribute("data-status", "complete", timeout=60_000)

    # Opened again (stored): both collapsed; only the preview is in the page.
    phone.reload()
    expect(phone.get_by_test_id("show-more")).to_have_count(2)
    assert len(question.locator(".bubble").text_content() or "") < 2000
    assert len(answer.get_by_test_id("answer-content").text_content() or "") < 2000
    height = question.bounding_box()["height"]  # type: ignore[index]
    assert height < 844, height

    question.get_by_test_id("show-more").tap()
    expect(question.get_by_test_id("show-more")).to_have_text("Show less")
    expect(question.get_by_test_id("show-more")).to_have_attribute("aria-expanded", "true")
    assert question.locator(".bubble").text_content() == LONG_QUESTION
    question.get_by_test_id("show-more").tap()
    expect(question.get_by_test_id("show-more")).to_have_text("Show more")
    assert len(question.locator(".bubble").text_content() or "") < 2000

    answer.get_by_test_id("show-more").tap()
    expect(answer.get_by_test_id("show-more")).to_have_text("Show less")
    expect(answer.get_by_test_id("answer-content")).to_contain_text(LONG_ANSWER.splitlines()[-1])
    assert (answer.get_by_test_id("answer-content").text_content() or "").count("again and again") \
        == 2703
    answer.get_by_test_id("show-more").tap()
    expect(answer.get_by_test_id("show-more")).to_have_text("Show more")
    assert phone.problems == []
