/**
 * The "Thinking" block above an answer (issue 13): the model's reasoning, live from its
 * first piece, collapsed once the answer's text begins, and open again at a click. A
 * <details>, so opening and closing is the browser's (keyboard and screen readers too).
 *
 * Reasoning is model output like the answer: it goes through the same renderer (marked,
 * then DOMPurify), never into innerHTML as it came.
 */

import { IncrementalRenderer, renderComplete } from "../render";
import { h } from "./dom";

export const THINKING_LABEL = "Thinking…";

export class ThinkingView {
  readonly element: HTMLDetailsElement;
  private readonly label: HTMLElement;
  private readonly body: HTMLElement;
  private renderer: IncrementalRenderer | null = null;
  /** stored reasoning not drawn yet: drawn when the block is first opened */
  private pending: string | null = null;
  /** reasoning streams now (since the last text delta) */
  private live = false;
  /** the block was collapsed for the text once: later text leaves it as the reader set it */
  private collapsed = false;

  constructor() {
    this.label = h("span", { class: "thinking-label", testid: "thinking-label" });
    this.body = h("div", { class: "md thinking-content", testid: "thinking-content" });
    this.element = h(
      "details",
      { class: "thinking", testid: "thinking", attrs: { hidden: true } },
      h("summary", { class: "thinking-summary", testid: "thinking-summary" }, this.label),
      this.body,
    );
    this.element.addEventListener("toggle", () => {
      if (this.element.open) this.drawPending();
    });
  }

  get isLive(): boolean {
    return this.live;
  }

  /** Complete reasoning (a stored answer, another version): collapsed, drawn on opening. */
  show(reasoning: string, label: string): void {
    this.reset();
    this.element.hidden = reasoning === "";
    this.element.open = false;
    this.pending = reasoning === "" ? null : reasoning;
    this.label.textContent = label;
  }

  /** A stream begins: hidden until its first piece of reasoning. */
  begin(): void {
    this.reset();
    this.element.hidden = true;
    this.element.open = false;
    this.renderer = new IncrementalRenderer(this.body, { cursor: false });
  }

  /** A piece of reasoning: the block shows, open, while the model thinks. */
  append(text: string): void {
    if (!this.renderer) return;
    if (this.element.hidden) {
      this.element.hidden = false;
      this.element.open = true;
    }
    if (!this.live) {
      this.live = true;
      this.label.textContent = THINKING_LABEL;
      this.element.classList.add("live");
    }
    this.renderer.feed(text);
  }

  /** The answer's text began (or the stream ended): the thinking is over for now. */
  settle(label: string, collapse = true): void {
    if (!this.live) return;
    this.live = false;
    this.element.classList.remove("live");
    this.label.textContent = label;
    if (collapse && !this.collapsed) {
      this.collapsed = true;
      this.element.open = false;
    }
  }

  /** The stream ended: draw the rest. An answer stopped while thinking stays open. */
  end(label: string): void {
    this.settle(label, false);
    this.renderer?.finish();
    if (!this.element.hidden) this.label.textContent = label;
  }

  /** Draw pending frames now (tests read the DOM at once). */
  flush(): void {
    this.renderer?.flush();
  }

  private reset(): void {
    this.body.replaceChildren();
    this.renderer = null;
    this.pending = null;
    this.live = false;
    this.collapsed = false;
    this.element.classList.remove("live");
  }

  private drawPending(): void {
    if (this.pending === null) return;
    renderComplete(this.body, this.pending);
    this.pending = null;
  }
}
