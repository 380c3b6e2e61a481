/**
 * The render benchmark's page: benchmarks/render.py drives these functions in Chromium.
 * It imports the app's own renderer, markdown pipeline and stylesheet: what is measured
 * is the code the chat page runs.
 */

import "../src/styles.css";
import { renderMarkdown } from "../src/markdown";
import { IncrementalRenderer } from "../src/render";

const TOPICS = ["stream log", "resume point", "cancel path", "store writer", "heartbeat", "reader pool"];

/** Deterministic, realistic chat-answer markdown of at least `minChars` characters. */
function markdownDocument(minChars: number): string {
  const parts: string[] = ["# How the relay keeps a stream alive\n"];
  for (let i = 0; parts.join("\n").length < minChars; i++) {
    const topic = TOPICS[i % TOPICS.length];
    parts.push(`## ${i + 1}. The ${topic}\n`);
    parts.push(
      `The **${topic}** is where most of the work happens: each event gets a sequence number, ` +
      `is encoded once with \`encode(event)\`, and handed to every reader as the same bytes. ` +
      `A reader that falls behind gets several deltas in one write instead of losing any, and ` +
      `a client that reconnects sends \`Last-Event-ID: ${40 + i}\` to continue right after what it ` +
      `saw. See [the WHATWG spec](https://html.spec.whatwg.org/multipage/server-sent-events.html) ` +
      `for the *exact* parsing rules.\n`,
    );
    parts.push(
      [
        `- keeps events for ${10 + i} minutes after the end`,
        "- never blocks the generation on a slow reader",
        `- answers \`204\` past the end, so an EventSource stops`,
        "- stores the partial answer on cancel\n",
      ].join("\n"),
    );
    if (i % 3 === 0) {
      parts.push(
        [
          "| reader | events/s | p99 latency | notes |",
          "|---|---:|---:|---|",
          `| browser | ${1200 + i * 7} | ${3 + (i % 4)} ms | EventSource |`,
          `| python | ${5400 + i * 11} | ${2 + (i % 3)} ms | httpx client |`,
          `| curl | ${8000 + i * 13} | 1 ms | \`-N\` |`,
          `| proxy | ${900 + i * 5} | ${9 + i} ms | buffering off |\n`,
        ].join("\n"),
      );
    }
    if (i % 3 === 1) {
      parts.push(
        [
          "```python",
          `async def relay_${i}(log: StreamLog, after: int) -> AsyncIterator[bytes]:`,
          '    """Yield encoded events after `after`, waiting for new ones."""',
          "    async for seq, payload in log.read(after=after):",
          "        if payload is HEARTBEAT:",
          '            yield b": ping\\n\\n"',
          "            continue",
          `        yield payload  # encoded once, shared by ${i + 2} readers`,
          "",
          "    # the stream ended with done or error",
          "    return",
          "```\n",
        ].join("\n"),
      );
    }
    if (i % 3 === 2) {
      parts.push(
        [
          "```ts",
          `const source = new EventSource("/api/streams/st_${i}");`,
          'source.addEventListener("delta", (event) => {',
          "  const { text } = JSON.parse(event.data);",
          "  renderer.feed(text);",
          "});",
          'source.addEventListener("done", () => source.close());',
          "```\n",
        ].join("\n"),
      );
      parts.push(`> Note: a proxy that buffers responses breaks streaming; send \`X-Accel-Buffering: no\`.\n`);
    }
    parts.push(
      [
        `1. Start the server with \`tokenrelay serve --port ${8000 + i}\`.`,
        "2. Open the page and ask a question.",
        "3. Pull the network cable mid-answer, then plug it back in.\n",
      ].join("\n"),
    );
  }
  return parts.join("\n");
}

/** Pieces of about the size of model tokens (1-4 characters and their leading spaces). */
function tokenize(text: string): string[] {
  return text.match(/\s*[^\s]{1,4}|\s+/g) ?? [];
}

/** Whitespace-run pieces, as the scripted provider cuts its `text` option. */
function words(text: string): string[] {
  return text.match(/\S*\s+|\S+/g) ?? [];
}

const out = document.getElementById("out")!;

function summarize(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length);
  return { count: times.length, mean, median: pick(0.5), p95: pick(0.95), max: sorted[sorted.length - 1] ?? 0 };
}

/**
 * Cost per incoming token, worst case: every token is fed and rendered at once
 * (flush), and layout is forced (offsetHeight), as if each token had its own frame.
 * Only tokens that arrive while the text is `from`..`to` characters long are counted.
 */
function perToken(text: string, from: number, to: number, layout = true) {
  const tokens = tokenize(text);
  // incremental
  out.replaceChildren();
  const renderer = new IncrementalRenderer(out, { schedule: () => 0, cancel: () => undefined });
  const incremental: number[] = [];
  let length = 0;
  for (const token of tokens) {
    const t0 = performance.now();
    renderer.feed(token);
    renderer.flush();
    if (layout) void out.offsetHeight;
    const dt = performance.now() - t0;
    length += token.length;
    if (length >= from && length <= to) incremental.push(dt);
  }
  renderer.finish();
  const blocks = renderer.blocksRendered;
  // naive: the whole text again for every token, same marked + DOMPurify + highlight.js
  const naive: number[] = [];
  length = 0;
  let prefix = "";
  for (const token of tokens) {
    prefix += token;
    length += token.length;
    if (length < from || length > to) continue;
    const t0 = performance.now();
    out.replaceChildren(renderMarkdown(prefix));
    if (layout) void out.offsetHeight;
    naive.push(performance.now() - t0);
  }
  out.replaceChildren();
  return {
    chars: text.length,
    tokens: tokens.length,
    blocks,
    incremental: summarize(incremental),
    naive: summarize(naive),
  };
}

/**
 * Stream `text` at `rate` tokens/s for `seconds` through the renderer as the page uses it
 * (feed per token, render per animation frame); record every frame's length
 * (requestAnimationFrame deltas) and every long task (PerformanceObserver).
 * mode "naive": re-render the whole text for every token instead (it falls behind:
 * the run still ends after `seconds`, with the tokens it managed).
 */
function stream(text: string, rate: number, seconds: number, mode: "incremental" | "naive") {
  const tokens = tokenize(text);
  out.replaceChildren();
  const renderer = mode === "incremental" ? new IncrementalRenderer(out) : null;
  let fed = 0;
  let source = "";
  const frames: number[] = [];
  const longTasks: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longTasks.push(entry.duration);
  });
  observer.observe({ type: "longtask", buffered: false });
  return new Promise((resolve) => {
    const start = performance.now();
    let last = start;
    const frame = (now: number) => {
      frames.push(now - last);
      last = now;
      if (now - start < seconds * 1000 + 200) requestAnimationFrame(frame);
    };
    requestAnimationFrame((now) => { last = now; requestAnimationFrame(frame); });
    const timer = setInterval(() => {
      const elapsed = performance.now() - start;
      const due = Math.min(tokens.length, Math.floor((elapsed / 1000) * rate));
      if (mode === "incremental") {
        while (fed < due) renderer!.feed(tokens[fed++]);
      } else {
        // The known trap: the whole markdown again for every token.
        while (fed < due && performance.now() - start < seconds * 1000) {
          source += tokens[fed++];
          out.replaceChildren(renderMarkdown(source));
        }
      }
      if (elapsed >= seconds * 1000 || fed >= tokens.length) {
        clearInterval(timer);
        renderer?.finish();
        const finished = performance.now();
        setTimeout(() => {
          observer.disconnect();
          resolve({
            mode,
            tokens: fed,
            chars: tokens.slice(0, fed).join("").length,
            seconds: (finished - start) / 1000,
            frames: summarize(frames),
            framesOver50: frames.filter((f) => f > 50).length,
            longTasks: summarize(longTasks),
            openRenders: renderer?.openRenders ?? null,
          });
        }, 300);
      }
    }, 4);
  });
}

Object.assign(window, {
  renderBench: { markdownDocument, tokenize, words, perToken, stream },
});
document.body.dataset.ready = "1";
