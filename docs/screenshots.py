"""Take the README's screenshots of the chat page (light, dark, phone).

    .venv/bin/python docs/screenshots.py

Starts a fresh `tokenrelay serve --database memory` with the bundled model (no
`--model`: what a user gets), seeds two conversations, asks for a haiku in each shot
and saves PNGs into docs/screenshots/. The model runs on the CPU: each answer takes a
while, so every wait is for a condition on the page, with a long deadline.
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
PROMPT = "Write a haiku about rivers"
#: the conversations the sidebar lists (short answers: the model is slow)
SEEDS = ("Name three long rivers", "What is backpressure? Answer in one sentence.")
#: a fixed seed, so a retake shows much the same answers
OPTIONS = {"seed": 1}
SHOTS = [("light", 1280, 860, "desktop-light"), ("dark", 1280, 860, "desktop-dark"),
         ("light", 390, 844, "phone-light")]
ANSWER_DEADLINE_MS = 300_000


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with start_server("--database", "memory") as server, sync_playwright() as playwright:
        for question in SEEDS:
            httpx.post(f"{server.url}/api/chat", timeout=300, json={
                "messages": [{"role": "user", "content": question}],
                "options": OPTIONS, "max_tokens": 60})
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        for scheme, width, height, name in SHOTS:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          color_scheme=scheme)
            page = context.new_page()
            page.goto(server.url)
            page.evaluate("o => localStorage.setItem('tokenrelay.options', JSON.stringify(o))",
                          OPTIONS)
            page.wait_for_selector("[data-testid=conversation-item]", state="attached")
            page.wait_for_selector("[data-testid=model-select] option", state="attached")
            page.fill("[data-testid=composer]", PROMPT)
            page.keyboard.press("Enter")
            answer = "[data-testid=message-assistant]"
            if name.startswith("phone"):
                # Mid-answer: some words, the cursor and the Stop button showing.
                page.wait_for_function(
                    "s => (document.querySelector(s + ' [data-testid=answer-content]')"
                    "?.textContent ?? '').trim().split(/\\s+/).length >= 6", arg=answer,
                    timeout=ANSWER_DEADLINE_MS)
            else:
                page.wait_for_selector(f"{answer}[data-status=complete]",
                                       timeout=ANSWER_DEADLINE_MS)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(OUT / f"{name}.png")
            if name.startswith("phone"):
                page.wait_for_selector(f"{answer}[data-status=complete]",
                                       timeout=ANSWER_DEADLINE_MS)
            # The next shot's sidebar lists the seeds only, not this shot's chat.
            httpx.delete(f"{server.url}/api/conversations/{page.url.rsplit('/', 1)[-1]}")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
