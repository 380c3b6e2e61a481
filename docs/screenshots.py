"""Take the README's screenshots of the chat page (light, dark, phone).

    .venv/bin/python docs/screenshots.py

Starts a fresh `tokenrelay serve --model scripted --database memory`, seeds two
conversations, streams a markdown answer and saves PNGs into docs/screenshots/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ARGS, CHROMIUM  # noqa: E402
from tests.servers import start_server  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
ANSWER = """## Streaming answers, explained

Server-Sent Events keep **one HTTP response open** and push `text/event-stream` lines
as they come. Three things make a stream *robust*:

1. Every event has an `id`, so a reader can resume with `Last-Event-ID`.
2. The generation runs apart from the connection.
3. A `done` or `error` event always ends it.

| Approach | Reconnects | Binary |
|---|:---:|---:|
| SSE | built in | no |
| WebSocket | by hand | yes |

```python
async def stream(request):
    async for event in log.read(after=request.last_id):
        yield encode(event)  # bytes, once
```

> Tip: cancel with `POST /api/streams/{id}/cancel`.

See [the spec](https://html.spec.whatwg.org/multipage/server-sent-events.html).
"""
SHOTS = [("light", 1280, 860, "desktop-light"), ("dark", 1280, 860, "desktop-dark"),
         ("light", 390, 844, "phone-light")]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with start_server("--model", "scripted", "--database", "memory") as server, \
            sync_playwright() as playwright:
        for question in ("Write a haiku about rivers", "What is backpressure?"):
            httpx.post(f"{server.url}/api/chat", timeout=30, json={
                "messages": [{"role": "user", "content": question}], "model": "scripted"})
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        for scheme, width, height, name in SHOTS:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          color_scheme=scheme)
            page = context.new_page()
            page.goto(server.url)
            page.evaluate("o => localStorage.setItem('tokenrelay.options', JSON.stringify(o))",
                          {"text": ANSWER, "delay_ms": 10})
            page.fill("[data-testid=composer]", "How do SSE streams survive a dropped connection?")
            page.keyboard.press("Enter")
            if name.startswith("phone"):
                page.wait_for_timeout(1200)  # mid-answer, cursor and Stop button showing
            else:
                page.wait_for_selector("[data-testid=message-assistant][data-status=complete]",
                                       timeout=30_000)
                page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(OUT / f"{name}.png")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
