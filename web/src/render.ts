/**
 * Incremental markdown rendering for a streaming answer (issue 4, "Speed").
 *
 * Re-parsing the whole answer on every token costs O(length) per token. Here the text
 * is cut into blocks: a block that is finished (followed by a blank line outside a code
 * fence, a closed fence, an ATX heading) is rendered once into the DOM and never
 * touched again; only the last, open block is rendered again, at most once per
 * animation frame, however many tokens arrived in between. The cost of a token is then
 * bounded by the size of the open block, not of the answer.
 *
 * Cutting only at those points keeps the result what marked gives for the whole text,
 * with known, harmless differences: a list whose items are separated by blank lines
 * becomes consecutive lists (an ordered one keeps its numbers through `start`), a
 * link reference definition applies only within its own block, and raw HTML left open
 * (`<details>` with no `</details>`) does not take in the blocks after it (sanitized
 * either way; web/test/render.properties.test.ts leaves this case out).
 */

import { renderMarkdown } from "./markdown";

const FENCE = /^([ \t]*)(`{3,}|~{3,})(.*)$/;
const BLANK = /^[ \t\r]*$/;
const ATX_HEADING = /^#{1,6}(?:[ \t]|\r?$)/;

/**
 * Finds where finished blocks end, scanning each complete line once. `scan` returns
 * the offsets at which blocks finished since the last call; the open block starts at
 * `blockStart`.
 */
export class BlockScanner {
  /** where the open (unfinished) block starts */
  blockStart = 0;
  private pos = 0;
  private inFence = false;
  private fenceChar = "";
  private fenceLength = 0;
  private fenceIndented = false;
  private blankSeen = false;

  scan(source: string): number[] {
    const ends: number[] = [];
    let newline: number;
    while ((newline = source.indexOf("\n", this.pos)) !== -1) {
      const start = this.pos;
      this.pos = newline + 1;
      this.line(source, start, source.slice(start, newline), newline + 1, ends);
    }
    // The first character of a line is enough to know that the block before a blank
    // line is finished: no need to wait for the whole (maybe long) line.
    if (this.blankSeen && !this.inFence && this.pos < source.length) {
      const first = source.charCodeAt(this.pos);
      if (first !== 0x20 && first !== 0x09 && first !== 0x0d) {
        this.commit(source, this.pos, ends);
      }
    }
    return ends;
  }

  private commit(source: string, at: number, ends: number[]): void {
    if (at <= this.blockStart) return;
    // A run of blank lines alone is no block: it joins the next one.
    if (BLANK.test(source.slice(this.blockStart, at).replace(/\n/g, ""))) return;
    ends.push(at);
    this.blockStart = at;
  }

  private line(source: string, start: number, line: string, next: number, ends: number[]): void {
    if (this.inFence) {
      const m = /^[ \t]*(`{3,}|~{3,})[ \t\r]*$/.exec(line);
      if (m && m[1][0] === this.fenceChar && m[1].length >= this.fenceLength) {
        this.inFence = false;
        if (!this.fenceIndented) this.commit(source, next, ends);
      }
      return;
    }
    if (BLANK.test(line)) {
      if (start > this.blockStart) this.blankSeen = true;
      return;
    }
    const indented = line.charCodeAt(0) === 0x20 || line.charCodeAt(0) === 0x09;
    // After a blank line, a line at column 0 starts a new block; an indented one
    // continues the block (a list item's paragraph, indented code).
    if (this.blankSeen && !indented) this.commit(source, start, ends);
    this.blankSeen = false;
    const fence = FENCE.exec(line);
    if (fence && !(fence[2][0] === "`" && fence[3].includes("`"))) {
      // A fence at column 0 interrupts a paragraph or a list.
      if (!indented) this.commit(source, start, ends);
      this.inFence = true;
      this.fenceChar = fence[2][0];
      this.fenceLength = fence[2].length;
      this.fenceIndented = indented;
      return;
    }
    if (!indented && ATX_HEADING.test(line)) {
      this.commit(source, start, ends);
      this.commit(source, next, ends);
    }
  }
}

export interface RendererOptions {
  /** markdown -> sanitized fragment (default: marked + DOMPurify + highlight.js) */
  render?: (markdown: string) => DocumentFragment;
  /** frame scheduling (default: requestAnimationFrame) */
  schedule?: (callback: () => void) => number;
  cancel?: (handle: number) => void;
  /** show a blinking cursor at the end of the text while it streams (default true) */
  cursor?: boolean;
}

/** Elements the cursor goes into when they end the open block, to sit after the last word. */
const CURSOR_HOSTS = new Set([
  "P", "LI", "UL", "OL", "BLOCKQUOTE", "PRE", "CODE", "H1", "H2", "H3", "H4", "H5", "H6",
  "TABLE", "THEAD", "TBODY", "TR", "TD", "TH", "DIV", "EM", "STRONG", "DEL", "A", "DETAILS",
]);

/**
 * Renders markdown that arrives in pieces into `element`:
 * `feed(text)` appends (cheap: the work happens once per frame), `flush()` does the
 * pending work now, `finish()` renders the rest and removes the cursor.
 */
export class IncrementalRenderer {
  readonly element: HTMLElement;
  /** finished blocks rendered so far (each once) */
  blocksRendered = 0;
  /** how often the open block was rendered */
  openRenders = 0;

  private source = "";
  private readonly scanner = new BlockScanner();
  private readonly openNode: HTMLElement;
  private readonly cursor: HTMLElement | null;
  private readonly render: (markdown: string) => DocumentFragment;
  private readonly schedule: (callback: () => void) => number;
  private readonly cancel: (handle: number) => void;
  private frame: number | null = null;
  /** the source range the open node shows, [start, end) */
  private openRendered: [number, number] | null = null;
  private finished = false;

  constructor(element: HTMLElement, options: RendererOptions = {}) {
    this.element = element;
    this.render = options.render ?? renderMarkdown;
    this.schedule = options.schedule ?? ((cb) => requestAnimationFrame(cb));
    this.cancel = options.cancel ?? ((handle) => cancelAnimationFrame(handle));
    this.openNode = document.createElement("div");
    this.openNode.className = "md-open";
    element.append(this.openNode);
    if (options.cursor ?? true) {
      this.cursor = document.createElement("span");
      this.cursor.className = "cursor";
      this.cursor.dataset.testid = "cursor";
      this.cursor.setAttribute("aria-hidden", "true");
      this.openNode.append(this.cursor);
    } else {
      this.cursor = null;
    }
  }

  /** The markdown received so far. */
  get text(): string {
    return this.source;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Append text; it shows at the next animation frame. */
  feed(text: string): void {
    if (text === "" || this.finished) return;
    this.source += text;
    if (this.frame === null) {
      this.frame = this.schedule(() => {
        this.frame = null;
        this.flush();
      });
    }
  }

  /** Render what is pending now: new finished blocks once each, then the open block. */
  flush(): void {
    if (this.frame !== null) {
      this.cancel(this.frame);
      this.frame = null;
    }
    if (this.finished) return;
    let start = this.scanner.blockStart;
    for (const end of this.scanner.scan(this.source)) {
      this.appendBlock(start, end);
      start = end;
    }
    if (this.openRendered === null || this.openRendered[1] !== this.source.length
        || this.openRendered[0] !== this.scanner.blockStart) {
      this.renderOpen();
    }
  }

  /** The text is complete: render the rest and drop the cursor. */
  finish(): void {
    if (this.finished) return;
    this.flush();
    this.cursor?.remove();
    this.finished = true;
    // The open block is final now: leave its content in place, unwrapped.
    this.openNode.replaceWith(...Array.from(this.openNode.childNodes));
  }

  private appendBlock(start: number, end: number): void {
    const shown = this.openRendered;
    this.openRendered = null; // the open block loses this text
    if (shown !== null && shown[0] === start && shown[1] === end) {
      // The open node shows exactly this block already: keep its DOM, render nothing.
      this.cursor?.remove();
      this.openNode.before(...Array.from(this.openNode.childNodes));
    } else {
      this.openNode.before(this.render(this.source.slice(start, end)));
    }
    this.blocksRendered += 1;
  }

  private renderOpen(): void {
    const start = this.scanner.blockStart;
    const open = this.source.slice(start);
    const fragment = BLANK.test(open.replace(/\n/g, "")) ? document.createDocumentFragment() : this.render(open);
    // Patch, don't replace: the nodes of the text shown before stay as they are, so
    // the browser restyles and lays out only what changed (mostly one text node). The
    // cursor stays where it is unless it must move: re-inserting it would restart its
    // blink animation, which costs more than the rest of the frame.
    // The cursor must end its host for the patch (new nodes go before it): a code
    // block's last newline, put after it by placeInCode, comes back before it first.
    const tail = this.cursor?.nextSibling;
    if (tail) this.cursor!.before(tail);
    morphChildren(this.openNode, fragment, this.cursor);
    this.openRendered = [start, this.source.length];
    this.openRenders += 1;
    if (this.cursor) this.placeCursor();
  }

  private placeCursor(): void {
    const cursor = this.cursor!;
    let host: Element = this.openNode;
    for (;;) {
      const last = lastChildBut(host, cursor);
      if (!(last instanceof Element) || !CURSOR_HOSTS.has(last.tagName)) break;
      if (last.classList.contains("code-bar")) break;
      host = last;
    }
    if (host.tagName === "CODE" && !this.source.endsWith("\n")) {
      this.placeInCode(host, cursor);
      return;
    }
    if (cursor.parentNode !== host || host.lastChild !== cursor) host.append(cursor);
  }

  /** In a code block the cursor follows the last character, on its line: marked ends
   *  the block's text with a newline of its own ("<code>x\n</code>"), which would put
   *  the cursor on a line below the code. That newline goes after the cursor (a text
   *  node moves, not the cursor: moving it restarts its blink). A newline the text
   *  really ends in keeps the cursor on the new line (placeCursor does not come here). */
  private placeInCode(code: Element, cursor: HTMLElement): void {
    if (cursor.parentNode !== code || code.lastChild !== cursor) code.append(cursor);
    const last = cursor.previousSibling;
    if (last instanceof Text && last.data.endsWith("\n")) {
      cursor.after(last.data.length === 1 ? last : last.splitText(last.data.length - 1));
    }
  }
}

/** Render a complete text at once (a stored answer), through the same block cutting. */
export function renderComplete(element: HTMLElement, markdown: string): IncrementalRenderer {
  const renderer = new IncrementalRenderer(element, { cursor: false, schedule: () => 0, cancel: () => undefined });
  renderer.feed(markdown);
  renderer.finish();
  return renderer;
}

/**
 * Make `target`'s children equal to `source`'s, keeping the nodes that already match:
 * a text node gets its new text, an element of the same tag is patched in place, and
 * only what differs is replaced. `source` is consumed.
 */
export function morphChildren(target: Node, source: Node, keep: Node | null = null): void {
  const skip = (node: ChildNode | null) => (node !== null && node === keep ? node.nextSibling : node);
  // `keep` (the cursor) is left alone: not compared, not removed, new nodes go before it.
  const anchor = keep !== null && keep.parentNode === target ? keep : null;
  let current = skip(target.firstChild);
  let next = source.firstChild;
  while (next !== null) {
    const following = next.nextSibling;
    if (current === null) {
      target.insertBefore(next, anchor);
    } else if (current.nodeType === next.nodeType && current.nodeName === next.nodeName) {
      if (current.nodeType === Node.ELEMENT_NODE) {
        if (!current.isEqualNode(next)) {
          morphAttributes(current as Element, next as Element);
          morphChildren(current, next, keep);
        }
      } else if (current.nodeValue !== next.nodeValue) {
        current.nodeValue = next.nodeValue;
      }
      current = skip(current.nextSibling);
    } else {
      target.replaceChild(next, current);
      current = skip(next.nextSibling);
    }
    next = following;
  }
  while (current !== null) {
    const following = skip(current.nextSibling);
    target.removeChild(current);
    current = following;
  }
}

/** The last child of `parent` that is not `but`, skipping whitespace-only text. */
function lastChildBut(parent: Node, but: Node): ChildNode | null {
  let node = parent.lastChild;
  while (node !== null && (node === but || (node.nodeType === Node.TEXT_NODE && !node.nodeValue?.trim()))) {
    node = node.previousSibling;
  }
  return node;
}

function morphAttributes(target: Element, source: Element): void {
  for (const { name } of Array.from(target.attributes)) {
    if (!source.hasAttribute(name)) target.removeAttribute(name);
  }
  for (const { name, value } of Array.from(source.attributes)) {
    if (target.getAttribute(name) !== value) target.setAttribute(name, value);
  }
}
