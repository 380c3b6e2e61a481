"""The cursor while code streams, laid out by real Chromium (issue 14, point 5): at the
end of the text, on the line of the last token, not on a line of its own below it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import with_options
from tests.servers import Server

#: the cursor's line against the line of the character before it, measured in one go
WHERE = """() => {
  const cursor = document.querySelector("[data-testid=message-assistant] [data-testid=cursor]");
  if (!cursor) return null;
  const range = document.createRange();
  range.selectNodeContents(cursor.parentElement);
  range.setEndBefore(cursor);
  const before = range.toString();
  const last = document.createRange();
  let node = cursor.previousSibling;
  while (node && node.nodeType !== Node.TEXT_NODE) node = node.lastChild ?? node.previousSibling;
  if (!node || !node.data) return null;
  last.setStart(node, node.data.length - 1);
  last.setEnd(node, node.data.length);
  const char = last.getBoundingClientRect();
  const box = cursor.getBoundingClientRect();
  return { host: cursor.parentElement.tagName, before, lastChar: node.data.slice(-1),
           charMiddle: (char.top + char.bottom) / 2, cursorTop: box.top, cursorBottom: box.bottom,
           cursorLeft: box.left, charRight: char.right };
}"""


def test_the_cursor_sits_after_the_last_code_token_on_its_line(page: Page,
                                                               page_server: Server) -> None:
    page.goto(page_server.url)
    code = "```python\ntotal = 0\nfor n in range(10):\n    total += n"
    with_options(page, text=code + " + 1" * 300, delay_ms=40)
    page.get_by_test_id("composer").fill("Some code please")
    page.get_by_test_id("composer").press("Enter")
    answer = page.get_by_test_id("message-assistant").last
    expect(answer.locator("pre code")).to_contain_text("total += n + 1 + 1")
    where = page.evaluate(WHERE)
    assert where is not None
    assert where["host"] == "CODE"
    assert where["before"].startswith("total = 0\nfor n in range(10):\n    total += n + 1")
    assert not where["before"].endswith("\n")
    # On the line of the last character, right after it.
    assert where["cursorTop"] <= where["charMiddle"] <= where["cursorBottom"], where
    assert where["cursorLeft"] >= where["charRight"] - 1, where
    page.get_by_test_id("stop").click()
    expect(answer.get_by_test_id("cursor")).to_have_count(0)
    assert page.problems == []
