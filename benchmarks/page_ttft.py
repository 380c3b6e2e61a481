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

    .venv/bin/python -m benchmarks.page_ttft --scripted [--runs 10] [--delay-ms 40]

Issue 13's figure: the same for reasoning, with the `scripted` model (no model time to
speak of), so what is left is what tokenrelay and the page add. Runs alternate between
an answer that thinks first (`reasoning`, then `text`) and one that does not, and record:
- reasoning: Enter -> the first frame painted with reasoning in the Thinking block,
  minus the server's time to that first piece (`done.timings.ttft_ms`: the first piece
  of a thinking answer is its first reasoning);
- text: the same for the first text token, in the runs with no reasoning (today's path);
- on the page alone, in the runs that think: the bytes of the first `reasoning` event
  and of the first `delta` reaching the page's JavaScript (timestamped by a wrapper
  around `fetch` that passes every chunk on untouched) -> the frame that paints each.
"First frame painted" is measured as for issue 4: a MutationObserver sees the text
enter the DOM, then the next requestAnimationFrame (so it errs late, by up to a frame).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ARGS, CHROMIUM  # noqa: E402
from tests.servers import start_server  # noqa: E402

#: Timestamps, on the page's clock, of the first chunk of an /api/chat body that holds
#: an event of each kind; the body is passed on chunk by chunk, untouched.
STAMP_ARRIVALS = r"""(() => {
  const fetch = window.fetch.bind(window);
  window.__arrived = {};
  window.fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!String(input).includes('/api/chat') || !response.body) return response;
    const decoder = new TextDecoder();
    let tail = '';
    const stamp = new TransformStream({ transform(chunk, controller) {
      const now = performance.now();
      const text = tail + decoder.decode(chunk, { stream: true });
      for (const kind of ['reasoning', 'delta']) {
        if (!(kind in window.__arrived) && text.includes('\nevent: ' + kind + '\n')) {
          window.__arrived[kind] = now;
        }
      }
      tail = text.slice(-32);
      controller.enqueue(chunk);
    } });
    return new Response(response.body.pipeThrough(stamp), {
      status: response.status, statusText: response.statusText, headers: response.headers });
  };
})();"""

#: Resolves with when Enter went down and when the first frame with text in each of
#: the last answer's parts (`thinking-content`, `answer-content`) was painted.
WATCH_PAINTS = """() => { window.__painted = new Promise((resolve) => {
  const painted = {};
  const wanted = new Set(['thinking-content', 'answer-content']);
  const composer = document.querySelector('[data-testid=composer]');
  composer.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') painted.enter = performance.now(); }, { once: true });
  const observer = new MutationObserver(() => {
    const answers = document.querySelectorAll('[data-testid=message-assistant]');
    const answer = answers[answers.length - 1];
    if (!answer) return;
    for (const part of [...wanted]) {
      const element = answer.querySelector(`[data-testid=${part}]`);
      if (element && element.textContent.trim()) {
        wanted.delete(part);
        requestAnimationFrame(() => { painted[part] = performance.now(); });
      }
    }
    if (answer.dataset.status === 'complete') {
      observer.disconnect();
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(painted)));
    }
  });
  observer.observe(document.body, { subtree: true, childList: true, characterData: true,
                                    attributes: true, attributeFilter: ['data-status'] });
}); }"""


def run_scripted(runs: int, delay_ms: float) -> dict[str, list[float]]:
    """Issue 13: added time to the first reasoning painted vs to the first text painted."""
    thinking = {"reasoning": "First I read the question, then I answer it.",
                "text": "The answer.", "delay_ms": delay_ms}
    plain = {"text": "The answer.", "delay_ms": delay_ms}
    figures: dict[str, list[float]] = {"reasoning": [], "text": [], "page_reasoning": [],
                                       "page_text": []}
    with start_server("--model", "scripted", "--database", "memory") as server, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        page.add_init_script(STAMP_ARRIVALS)
        for n in range(2 * (runs + 1)):  # the first pair is a warm-up
            thinks = n % 2 == 0
            page.goto(server.url)
            page.evaluate("o => localStorage.setItem('tokenrelay.options', JSON.stringify(o))",
                          thinking if thinks else plain)
            page.goto(server.url)
            page.wait_for_selector("[data-testid=composer]")
            page.evaluate(WATCH_PAINTS)
            page.fill("[data-testid=composer]", f"Question {n}")
            page.keyboard.press("Enter")
            painted = page.evaluate("window.__painted")
            arrived = page.evaluate("window.__arrived")
            conversation_id = page.url.rsplit("/", 1)[-1]
            stored = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()
            ttft = stored["messages"][-1]["timings"]["ttft_ms"]
            first = painted["thinking-content" if thinks else "answer-content"] - painted["enter"]
            if n < 2:
                continue
            if thinks:
                figures["reasoning"].append(first - ttft)
                figures["page_reasoning"].append(painted["thinking-content"] - arrived["reasoning"])
                figures["page_text"].append(painted["answer-content"] - arrived["delta"])
                print(f"run {n // 2}: reasoning: Enter -> painted {first:.1f} ms, server "
                      f"{ttft:.1f} ms, added {first - ttft:.1f} ms; on the page: reasoning "
                      f"{figures['page_reasoning'][-1]:.1f} ms, text {figures['page_text'][-1]:.1f} ms")
            else:
                figures["text"].append(first - ttft)
                print(f"run {n // 2}: text: Enter -> painted {first:.1f} ms, server "
                      f"{ttft:.1f} ms, added {first - ttft:.1f} ms")
        browser.close()
    return figures


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
    parser.add_argument("--scripted", action="store_true",
                        help="issue 13: reasoning vs text with the scripted model")
    parser.add_argument("--delay-ms", type=float, default=40,
                        help="--scripted: the scripted model's pause before each piece")
    args = parser.parse_args()
    if args.scripted:
        figures = run_scripted(args.runs, args.delay_ms)
        median = {k: statistics.median(v) for k, v in figures.items()}
        print(f"\nmedian over {args.runs} runs each (load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}):\n"
              f"  added to the first reasoning painted: {median['reasoning']:.1f} ms "
              f"(max {max(figures['reasoning']):.1f})\n"
              f"  added to the first text painted:      {median['text']:.1f} ms "
              f"(max {max(figures['text']):.1f})\n"
              f"  on the page, arrival -> paint: reasoning {median['page_reasoning']:.1f} ms, "
              f"text {median['page_text']:.1f} ms")
        return
    results = run(args.runs)
    painted = statistics.median(p for p, _ in results)
    ttft = statistics.median(t for _, t in results)
    print(f"\nmedian over {len(results)} runs: Enter -> first token painted {painted:.1f} ms; "
          f"the model's own time to first token {ttft:.1f} ms; added {painted - ttft:.1f} ms")


if __name__ == "__main__":
    main()
