/** The message list: user messages, and answers with their versions, status and stats. */

import type { MessageError, MessageStatus, StoredMessage, ToolCallData, Timings, Usage } from "../api";
import { STATUS_LABEL, formatStats, formatThought, statsTitle } from "../format";
import { IncrementalRenderer, renderComplete } from "../render";
import { type BannerOptions, errorBanner } from "./banner";
import { collapseToggle, isLong, preview } from "./collapse";
import { h, iconButton } from "./dom";
import { ThinkingView } from "./thinking";
import { type ToolCallState, ToolCallsView, addToolCallPiece } from "./toolcalls";

export interface AnswerVersion {
  id: string | null;
  status: MessageStatus;
  content: string;
  model: string | null;
  usage: Usage | null;
  timings: Timings | null;
  error: MessageError | null;
  streamId: string | null;
  /** the model's reasoning ("" if none) */
  reasoning: string;
  /** when this page saw the first and the last piece of reasoning arrive (its own
   *  clock, ms); null when it did not see them arrive (stored, replayed) */
  thought: { first: number; last: number } | null;
  toolCalls: ToolCallState[];
}

/** A stored answer as a version; `results`: the stored tool results, by call id. */
export function versionFromStored(message: StoredMessage, results?: ReadonlyMap<string, string>): AnswerVersion {
  return {
    id: message.id,
    status: message.status,
    content: message.content,
    model: message.model,
    usage: message.usage,
    timings: message.timings,
    error: message.error,
    streamId: message.stream_id,
    reasoning: message.reasoning ?? "",
    thought: null,
    toolCalls: (message.tool_calls ?? []).map((call, index) => ({
      ...call, index, result: results?.get(call.id),
    })),
  };
}

/** "Thought for 12 s", or "Thought" when the page did not see the reasoning arrive. */
export function thoughtLabel(version: AnswerVersion): string {
  return formatThought(version.thought ? version.thought.last - version.thought.first : null);
}

export function userMessageView(text: string): HTMLElement {
  const bubble = h("div", { class: "bubble" });
  const article = h("article", { class: "msg msg-user", testid: "message-user", attrs: { "aria-label": "You said" } }, bubble);
  if (!isLong(text)) {
    bubble.textContent = text;
    return article;
  }
  const shown = preview(text);
  bubble.after(collapseToggle(bubble, (expanded) => {
    bubble.textContent = expanded ? text : `${shown}…`;
  }));
  return article;
}

export interface AnswerHandlers {
  regenerate: () => void;
  copied: () => void;
}

/** One answer to one user message, with every version of it (regenerate keeps the old ones). */
export class AnswerView {
  readonly element: HTMLElement;
  readonly versions: AnswerVersion[];
  index: number;
  renderer: IncrementalRenderer | null = null;

  private readonly content: HTMLElement;
  private readonly thinking = new ThinkingView();
  private readonly tools = new ToolCallsView();
  private readonly errorSlot: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly stats: HTMLElement;
  private readonly connection: HTMLElement;
  private readonly nav: HTMLElement;
  private readonly navLabel: HTMLElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly copyButton: HTMLButtonElement;
  private readonly regenerateButton: HTMLButtonElement;
  private readonly actions: HTMLElement;
  private isLast = false;
  private busy = false;
  /** Show more / Show less of a long answer shown complete */
  private toggle: HTMLButtonElement | null = null;

  constructor(versions: AnswerVersion[], private readonly handlers: AnswerHandlers) {
    this.versions = versions;
    this.index = Math.max(0, versions.length - 1);
    this.content = h("div", { class: "md", testid: "answer-content" });
    this.errorSlot = h("div", { class: "msg-error-slot" });
    this.badge = h("span", { class: "badge", testid: "status-badge", attrs: { hidden: true } });
    this.stats = h("span", { class: "stats", testid: "stats" });
    this.connection = h("span", { class: "connection", testid: "connection", attrs: { hidden: true } });
    this.prev = iconButton("left", "Previous version", { class: "icon-btn", testid: "version-prev" });
    this.next = iconButton("right", "Next version", { class: "icon-btn", testid: "version-next" });
    this.navLabel = h("span", { class: "version-label", testid: "version-label" });
    this.nav = h("span", { class: "versions", attrs: { hidden: true } }, this.prev, this.navLabel, this.next);
    this.copyButton = iconButton("copy", "Copy answer", { class: "icon-btn", testid: "copy-answer" });
    // In the DOM only on the last answer, so [data-testid=regenerate] is one button.
    this.regenerateButton = iconButton("regenerate", "Regenerate", { class: "icon-btn", testid: "regenerate" });
    this.prev.addEventListener("click", () => this.show(this.index - 1));
    this.next.addEventListener("click", () => this.show(this.index + 1));
    this.regenerateButton.addEventListener("click", () => this.handlers.regenerate());
    this.copyButton.addEventListener("click", () => this.handlers.copied());
    const foot = h(
      "div",
      { class: "msg-foot" },
      this.badge, this.connection, this.stats,
      this.actions = h("span", { class: "msg-actions" }, this.nav, this.copyButton),
    );
    this.element = h(
      "article",
      { class: "msg msg-assistant", testid: "message-assistant", attrs: { "aria-label": "Answer" } },
      this.thinking.element, this.content, this.tools.element, this.errorSlot, foot,
    );
    if (versions.length > 0) this.show(this.index);
  }

  get current(): AnswerVersion {
    return this.versions[this.index];
  }

  get streaming(): boolean {
    return this.renderer !== null && !this.renderer.isFinished;
  }

  /** Show version `index`, rendered complete. */
  show(index: number): void {
    if (index < 0 || index >= this.versions.length || this.streaming) return;
    this.index = index;
    this.content.replaceChildren();
    this.renderer = null;
    this.toggle?.remove();
    this.toggle = null;
    this.content.classList.remove("collapsed");
    const text = this.current.content;
    if (isLong(text)) {
      // Rendered when asked for: a whole 100,000-character answer costs seconds of markdown.
      const shown = preview(text);
      this.toggle = collapseToggle(this.content, (expanded) => {
        this.content.replaceChildren();
        renderComplete(this.content, expanded ? text : shown);
      });
      this.content.after(this.toggle);
    } else {
      renderComplete(this.content, text);
    }
    this.thinking.show(this.current.reasoning, thoughtLabel(this.current));
    this.tools.show(this.current.toolCalls);
    this.clearError();
    const version = this.current;
    if (version.status === "error" && version.error) {
      this.showError({ message: version.error.message });
    }
    this.refresh();
  }

  /** Start showing a streaming version (a new answer, a regenerated one, or a replay). */
  beginStream(version: AnswerVersion, replace = false): void {
    if (replace && this.versions.length > 0) {
      this.versions[this.index] = version;
    } else {
      this.versions.push(version);
      this.index = this.versions.length - 1;
    }
    this.content.replaceChildren();
    this.toggle?.remove();
    this.toggle = null;
    this.content.classList.remove("collapsed");
    this.clearError();
    this.renderer = new IncrementalRenderer(this.content);
    this.thinking.begin();
    this.tools.clear();
    this.refresh();
  }

  append(text: string): void {
    this.current.content += text;
    // The text begins: the thinking is over (for now), and its block folds away.
    if (this.thinking.isLive) this.thinking.settle(thoughtLabel(this.current));
    this.renderer?.feed(text);
  }

  /** A piece of the model's reasoning, shown in the Thinking block above the text. */
  appendReasoning(text: string): void {
    this.current.reasoning += text;
    this.thinking.append(text);
  }

  /** A piece of a tool call: its card shows the arguments as they are so far. */
  appendToolCall(piece: ToolCallData): void {
    this.tools.update(addToolCallPiece(this.current.toolCalls, piece));
  }

  /** Draw what waits for the next animation frame now (tests read the DOM at once). */
  flush(): void {
    this.renderer?.flush();
    this.thinking.flush();
  }

  /** The stream ended: render the rest, drop the cursor. */
  endStream(): void {
    this.renderer?.finish();
    this.thinking.end(thoughtLabel(this.current));
    this.tools.show(this.current.toolCalls);
    this.setConnection(null);
    this.refresh();
  }

  setConnection(text: string | null): void {
    this.connection.hidden = text === null;
    this.connection.textContent = text ?? "";
  }

  setLast(isLast: boolean): void {
    this.isLast = isLast;
    this.refresh();
  }

  /** Another answer streams somewhere: no regenerate or version switch meanwhile. */
  setBusy(busy: boolean): void {
    this.busy = busy;
    this.refresh();
  }

  showError(options: BannerOptions): void {
    this.errorSlot.replaceChildren(errorBanner(options));
  }

  clearError(): void {
    this.errorSlot.replaceChildren();
  }

  focusRetry(): void {
    this.errorSlot.querySelector<HTMLButtonElement>("[data-testid=retry]")?.focus();
  }

  refresh(): void {
    const version = this.current;
    if (!version) return;
    const streaming = this.streaming || version.status === "streaming";
    this.element.dataset.status = version.status;
    this.element.setAttribute("aria-busy", streaming ? "true" : "false");
    // A request that failed before the server started an answer: its banner says it
    // all, and there is nothing to regenerate or copy.
    const notStarted = version.status === "error" && version.id === null;
    const label = STATUS_LABEL[version.status];
    this.badge.hidden = !label || version.status === "streaming" || notStarted;
    this.badge.textContent = label;
    this.badge.className = `badge badge-${version.status}`;
    const stats = streaming ? "" : formatStats(version.usage, version.timings);
    this.stats.textContent = stats;
    this.stats.hidden = stats === "";
    this.stats.title = statsTitle(version.usage, version.timings);
    const many = this.versions.length > 1;
    this.nav.hidden = !many;
    this.navLabel.textContent = `${this.index + 1} / ${this.versions.length}`;
    this.navLabel.setAttribute("aria-label", `Version ${this.index + 1} of ${this.versions.length}`);
    this.prev.disabled = streaming || this.busy || this.index === 0;
    this.next.disabled = streaming || this.busy || this.index === this.versions.length - 1;
    this.copyButton.hidden = streaming || version.content === "";
    const canRegenerate = this.isLast && !streaming && !this.busy && !notStarted;
    if (canRegenerate && !this.regenerateButton.isConnected) this.actions.append(this.regenerateButton);
    if (!canRegenerate && this.regenerateButton.isConnected) this.regenerateButton.remove();
  }
}
