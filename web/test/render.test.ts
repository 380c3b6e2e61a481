import { describe, expect, it, vi } from "vitest";
import { renderMarkdown } from "../src/markdown";
import { BlockScanner, IncrementalRenderer, renderComplete } from "../src/render";

const DOC = `# Release notes

The stream **keeps** every event, so a reader can *resume*.

## What changed

- resume with \`Last-Event-ID\`
- cancel from any tab
- partial answers are kept

1. first
2. second

| metric | before | after |
|---|---:|---:|
| ms/token | 19 | 0.3 |
| long frames | 12 | 0 |

\`\`\`python
def read(log, after):

    # a blank line inside a fence does not end the block
    return log[after:]
\`\`\`
Text right after a fence.

> a quote
> on two lines

---

Final paragraph with a [link](https://example.com) and trailing text`;

/** A seeded PRNG (mulberry32), so a failing cut can be reproduced. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A renderer whose frames run only when the test says so. */
function manual(element: HTMLElement, render?: (md: string) => DocumentFragment) {
  const frames: Array<() => void> = [];
  const renderer = new IncrementalRenderer(element, {
    render,
    schedule: (cb) => frames.push(cb),
    cancel: (handle) => { frames[handle - 1] = () => undefined; },
  });
  const runFrame = () => frames.splice(0).forEach((cb) => cb());
  return { renderer, frames, runFrame };
}

const squash = (html: string) => html.replace(/>\s+</g, "><").trim();

function blocks(source: string): string[] {
  const scanner = new BlockScanner();
  const ends = scanner.scan(source);
  const out: string[] = [];
  let start = 0;
  for (const end of ends) {
    out.push(source.slice(start, end));
    start = end;
  }
  out.push(source.slice(start));
  return out;
}

describe("BlockScanner", () => {
  it("ends a block at a blank line followed by a line at column 0", () => {
    expect(blocks("para one\nstill one\n\npara two\n")).toEqual(["para one\nstill one\n\n", "para two\n"]);
  });

  it("waits for the next line before ending a block", () => {
    expect(blocks("para one\n\n")).toEqual(["para one\n\n"]);
  });

  it("does not end a block inside a fenced code block", () => {
    const text = "```js\nconst a = 1;\n\n\nconst b = 2;\n```\nafter\n";
    expect(blocks(text)).toEqual(["```js\nconst a = 1;\n\n\nconst b = 2;\n```\n", "after\n"]);
  });

  it("only closes a fence with the same character, at least as long", () => {
    const text = "````\n```\n~~~\n\nstill code\n````\nafter\n";
    expect(blocks(text)).toEqual(["````\n```\n~~~\n\nstill code\n````\n", "after\n"]);
  });

  it("keeps an indented continuation with its list item", () => {
    const text = "- item\n\n  more of the item\n\n- next\n";
    expect(blocks(text)).toEqual(["- item\n\n  more of the item\n\n", "- next\n"]);
  });

  it("makes an ATX heading a block of its own", () => {
    expect(blocks("intro\n# Title\nbody\n")).toEqual(["intro\n", "# Title\n", "body\n"]);
  });

  it("lets a fence at column 0 interrupt a paragraph", () => {
    expect(blocks("look:\n```\ncode\n```\n")).toEqual(["look:\n", "```\ncode\n```\n", ""]);
  });

  it("scans each line once, however the text arrives", () => {
    const scanner = new BlockScanner();
    let source = "";
    const ends: number[] = [];
    for (const ch of DOC) {
      source += ch;
      ends.push(...scanner.scan(source));
    }
    expect(ends).toEqual(new BlockScanner().scan(DOC));
  });
});

describe("IncrementalRenderer", () => {
  it("renders the same DOM however the text is cut and whenever frames run", () => {
    const reference = document.createElement("div");
    renderComplete(reference, DOC);
    for (const seed of [1, 2, 3, 42]) {
      const random = prng(seed);
      const element = document.createElement("div");
      const { renderer, runFrame } = manual(element);
      let i = 0;
      while (i < DOC.length) {
        const size = 1 + Math.floor(random() * 12);
        renderer.feed(DOC.slice(i, i + size));
        i += size;
        if (random() < 0.3) runFrame();
      }
      renderer.finish();
      expect(element.innerHTML).toBe(reference.innerHTML);
    }
  });

  it("renders what marked renders for the whole text", () => {
    const whole = document.createElement("div");
    whole.append(renderMarkdown(DOC));
    const element = document.createElement("div");
    renderComplete(element, DOC);
    expect(squash(element.innerHTML)).toBe(squash(whole.innerHTML));
  });

  it("renders each finished block once, and only the open block again", () => {
    const render = vi.fn(renderMarkdown);
    const element = document.createElement("div");
    const { renderer } = manual(element, render);
    const tokens = DOC.match(/\S*\s+|\S+/g)!;
    for (const token of tokens) {
      renderer.feed(token);
      renderer.flush(); // the worst case: a frame for every token
    }
    renderer.finish();
    const finished = blocks(DOC).slice(0, -1).filter((b) => b.trim() !== "");
    // Every finished block was rendered exactly once as a whole...
    for (const block of finished) {
      expect(render.mock.calls.filter(([md]) => md === block)).toHaveLength(1);
    }
    expect(renderer.blocksRendered).toBe(finished.length);
    // ...and no render was ever given more than the open block, not the whole text.
    const longestBlock = Math.max(...blocks(DOC).map((b) => b.length));
    expect(Math.max(...render.mock.calls.map(([md]) => md.length))).toBeLessThanOrEqual(longestBlock);
  });

  it("batches the tokens of one frame into one render", () => {
    const render = vi.fn(renderMarkdown);
    const element = document.createElement("div");
    const { renderer, frames, runFrame } = manual(element, render);
    for (let i = 0; i < 100; i++) renderer.feed("word ");
    expect(frames).toHaveLength(1);
    expect(render).not.toHaveBeenCalled();
    runFrame();
    expect(render).toHaveBeenCalledTimes(1);
    expect(element.textContent).toContain("word word");
  });

  it("shows a cursor after the last word while streaming, and none after finish()", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    renderer.feed("First paragraph.\n\nSecond **bold** and more");
    renderer.flush();
    const cursors = element.querySelectorAll("[data-testid=cursor]");
    expect(cursors).toHaveLength(1);
    const cursor = cursors[0];
    expect(cursor.parentElement!.tagName).toBe("P");
    expect(cursor.parentElement!.textContent).toBe("Second bold and more");
    expect(cursor.nextSibling).toBeNull();
    renderer.finish();
    expect(element.querySelector("[data-testid=cursor]")).toBeNull();
    expect(element.querySelectorAll("p")).toHaveLength(2);
  });

  it("puts the cursor inside a code block that is still streaming", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    renderer.feed("```python\nprint('hi')\nx = 1");
    renderer.flush();
    const cursor = element.querySelector("[data-testid=cursor]")!;
    expect(cursor.parentElement!.tagName).toBe("CODE");
    expect(element.querySelector(".code-lang")!.textContent).toBe("python");
  });

  it("keeps the cursor in a streaming code block right after the last character, on its line (issue 14)", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    const before = (cursor: Element) => {
      const range = document.createRange();
      range.selectNodeContents(cursor.parentElement!);
      range.setEndBefore(cursor);
      return range.toString();
    };
    const after = (cursor: Element) => {
      const range = document.createRange();
      range.selectNodeContents(cursor.parentElement!);
      range.setStartAfter(cursor);
      return range.toString();
    };
    renderer.feed("```python\nprint('hi')\nx = 1");
    renderer.flush();
    const cursor = element.querySelector("[data-testid=cursor]")!;
    expect(cursor.parentElement!.tagName).toBe("CODE");
    expect(before(cursor)).toBe("print('hi')\nx = 1"); // not "x = 1\n": no line of its own
    expect(after(cursor)).toBe("\n"); // marked's closing newline, after the cursor
    // More tokens: the text grows before the cursor, which is never moved (its blink
    // would restart) and stays one.
    const moves = new MutationObserver(() => undefined);
    moves.observe(element, { childList: true, subtree: true });
    for (const token of [" +", " 2", "  # sum"]) {
      renderer.feed(token);
      renderer.flush();
    }
    const moved = moves.takeRecords().some((r) => [...r.addedNodes, ...r.removedNodes].includes(cursor));
    expect(moved).toBe(false);
    expect(element.querySelectorAll("[data-testid=cursor]")).toHaveLength(1);
    expect(before(cursor)).toBe("print('hi')\nx = 1 + 2  # sum");
    expect(after(cursor)).toBe("\n");
    // A newline the text really ends in starts a new line: the cursor goes there.
    renderer.feed("\n");
    renderer.flush();
    expect(before(cursor)).toBe("print('hi')\nx = 1 + 2  # sum\n");
    expect(after(cursor)).toBe("");
    renderer.feed("y");
    renderer.flush();
    expect(before(cursor)).toBe("print('hi')\nx = 1 + 2  # sum\ny");
    renderer.finish();
    expect(element.querySelector("[data-testid=cursor]")).toBeNull();
    expect(element.querySelector("code")!.textContent).toBe("print('hi')\nx = 1 + 2  # sum\ny\n");
  });

  it("keeps the cursor after the last character of a code block with no language, after a paragraph", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    renderer.feed("Steps:\n\n```\nmake test");
    renderer.flush();
    const cursor = element.querySelector("[data-testid=cursor]")!;
    expect(cursor.parentElement!.tagName).toBe("CODE");
    expect(cursor.previousSibling!.textContent!.endsWith("make test")).toBe(true);
    expect(cursor.nextSibling!.textContent).toBe("\n");
  });

  it("renders the last line at finish() even without a newline", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    renderer.feed("# Title\nlast line");
    renderer.finish();
    expect(element.querySelector("h1")!.textContent).toBe("Title");
    expect(element.querySelector("p")!.textContent).toBe("last line");
    expect(renderer.isFinished).toBe(true);
    renderer.feed("ignored");
    expect(element.textContent).not.toContain("ignored");
  });

  it("keeps finished blocks' nodes in place while the answer grows", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    renderer.feed("Paragraph one.\n\nParagraph two");
    renderer.flush();
    const first = element.querySelector("p")!;
    renderer.feed(" grows.\n\nThree");
    renderer.flush();
    expect(element.querySelector("p")).toBe(first); // not re-created
    expect(element.querySelectorAll("p")).toHaveLength(3);
  });

  it("sanitizes what streams in, block by block", () => {
    const element = document.createElement("div");
    const { renderer } = manual(element);
    for (const piece of ["<scr", "ipt>alert(1)</script>\n\n<img src=x onerror=", "alert(1)>\n\nok"]) {
      renderer.feed(piece);
      renderer.flush();
    }
    renderer.finish();
    expect(element.querySelector("script, img, [onerror]")).toBeNull();
  });
});
