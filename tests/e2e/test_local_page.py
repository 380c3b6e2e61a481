"""The page against the bundled model (a server started with no --model, as a user
starts it; issue 14, points 2 and 4): the picker's readable label, and a message too
long for the model's context given back to be shortened. The refusal comes before any
generation, so this is quick once the model is loaded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.servers import Server, start_server

pytestmark = pytest.mark.model

#: about 10,000 of SmolLM2's tokens: over its 8,192 window
LONG = "The river bends around the old mill and the water runs on. " * 850


@pytest.fixture(scope="module")
def local_server() -> Iterator[Server]:
    with start_server() as running:  # no --model: the bundled model, default settings
        yield running


def test_the_picker_shows_the_models_label_and_keeps_its_name(page: Page,
                                                              local_server: Server) -> None:
    page.goto(local_server.url)
    select = page.get_by_test_id("model-select")
    expect(select.locator("option[value=local]")).to_have_text("SmolLM2 135M · local CPU")
    expect(select).to_have_value("local")


def test_a_message_too_long_goes_back_to_be_shortened(page: Page, local_server: Server) -> None:
    page.goto(local_server.url)
    composer = page.get_by_test_id("composer")
    composer.evaluate("(e, text) => { e.value = text; e.dispatchEvent(new Event('input')); }", LONG)
    page.get_by_test_id("send").click()
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_contain_text("context window of 8,192 tokens", timeout=60_000)
    expect(banner).to_contain_text("shorten it")
    expect(page.get_by_test_id("retry")).to_have_count(0)
    expect(page.get_by_test_id("edit-message")).to_be_visible()
    expect(page.get_by_test_id("message-user")).to_have_count(0)
    expect(page.get_by_test_id("message-assistant")).to_have_count(0)
    assert composer.input_value() == LONG
    expect(composer).to_be_focused()
    # Shortened, it goes through.
    composer.fill("Say OK.")
    composer.press("Enter")
    expect(page.get_by_test_id("message-user")).to_have_text("Say OK.")
    expect(banner).to_have_count(0)
