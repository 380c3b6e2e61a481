"""From pressing Enter on the chat page to the first token painted, with the bundled
model, next to the model's own time to first token (issue 4's closing figure).

    .venv/bin/python -m benchmarks.page_ttft [--runs 5]

Starts `tokenrelay serve` with the default model (`local`, SmolLM2 on the CPU) and an
in-memory store, drives the built page in headless Chromium, and per run records:
- page: Enter keydown -> the first frame painted with answer text (a MutationObserver
  on the answer, then the next requestAnimationFrame: the frame that shows it);
- server: the generation's own time to first token (`done.timings.ttft_ms`: from the
  start of the generation to the model's first token, as stored with the answer).
The difference is what the page, HTTP and the relay add.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ARGS, CHROMIUM  # noqa: E402
from tests.servers import start_server  # noqa: E402

def run(runs: int) -> list[tuple[float, float]]:
    results = []
    with start_server("--database", "memory") as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        page.goto(server.url)
        page.evaluate("o => localStorage.setItem('tokenrelay.options', JSON.stringify(o))",
                      {"seed": 1})
        for n in range(runs + 1):  # the first is a warm-up
            page.goto(server.url)
            page.wait_for_selector("[data-testid=composer]")
            page.evaluate("""() => { window.__result = new Promise((resolve) => {
                const composer = document.querySelector('[data-testid=composer]');
                composer.addEventListener('keydown', (e) => {
                  if (e.key === 'Enter') window.__enter = performance.now(); }, { once: true });
                const observer = new MutationObserver(() => {
                  const content = document.querySelector(
                    '[data-testid=message-assistant] [data-testid=answer-content]');
                  if (content && content.textContent.trim()) {
                    observer.disconnect();
                    requestAnimationFrame(() => resolve(performance.now() - window.__enter));
                  }
                });
                observer.observe(document.body, {subtree: true, childList: true,
                                                 characterData: true});
              }); }""")
            page.fill("[data-testid=composer]", f"Say hello in five words ({n}).")
            page.keyboard.press("Enter")
            painted = page.evaluate("window.__result")
            page.wait_for_selector("[data-testid=message-assistant][data-status=complete]",
                                   timeout=60_000)
            conversation_id = page.url.rsplit("/", 1)[-1]
            stored = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()
            ttft = stored["messages"][-1]["timings"]["ttft_ms"]
            if n:
                results.append((painted, ttft))
                print(f"run {n}: Enter -> first token painted {painted:.1f} ms; "
                      f"model's own time to first token {ttft:.1f} ms")
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.page_ttft")
    parser.add_argument("--runs", type=int, default=5)
    results = run(parser.parse_args().runs)
    painted = statistics.median(p for p, _ in results)
    ttft = statistics.median(t for _, t in results)
    print(f"\nmedian over {len(results)} runs: Enter -> first token painted {painted:.1f} ms; "
          f"the model's own time to first token {ttft:.1f} ms; added {painted - ttft:.1f} ms")


if __name__ == "__main__":
    main()
