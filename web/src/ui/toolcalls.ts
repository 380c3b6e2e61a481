/**
 * Tool calls under an answer (issue 13): one compact card per call, with the function's
 * name and its arguments as they stream in, pretty-printed once complete; the result (a
 * stored `tool` message) under its call.
 *
 * Names, arguments and results are model or tool output: always text (textContent),
 * never HTML.
 */

import type { StoredMessage, ToolCall, ToolCallData } from "../api";
import { h } from "./dom";

/** A call as an answer keeps it: `index` is its place in the model's list. */
export interface ToolCallState extends ToolCall {
  index: number;
  /** the result sent back for it (a stored `tool` message), if any */
  result?: string;
}

/** Add a `tool_call` event's piece to `calls` (kept in index order); returns its call. */
export function addToolCallPiece(calls: ToolCallState[], piece: ToolCallData): ToolCallState {
  let call = calls.find((c) => c.index === piece.index);
  if (!call) {
    call = { index: piece.index, id: piece.id ?? "", name: piece.name ?? "", arguments: "" };
    const after = calls.findIndex((c) => c.index > piece.index);
    calls.splice(after === -1 ? calls.length : after, 0, call);
  } else {
    if (piece.id && !call.id) call.id = piece.id;
    if (piece.name && !call.name) call.name = piece.name;
  }
  call.arguments += piece.arguments ?? "";
  return call;
}

/** The calls of `done` (assembled by the server), keeping the results already known. */
export function assembledCalls(calls: ToolCall[], known: ToolCallState[]): ToolCallState[] {
  return calls.map((call, index) => ({
    index, id: call.id, name: call.name, arguments: call.arguments,
    result: known.find((k) => k.id === call.id)?.result,
  }));
}

/** Arguments as indented JSON; as they came when they are not JSON (a cut-off call). */
export function prettyArguments(text: string): string {
  if (text.trim() === "") return "{}";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

interface Card {
  element: HTMLElement;
  name: HTMLElement;
  args: HTMLElement;
  result: HTMLElement;
}

export class ToolCallsView {
  readonly element: HTMLElement;
  private readonly cards = new Map<number, Card>();

  constructor() {
    this.element = h("div", { class: "tool-calls", testid: "tool-calls", attrs: { hidden: true } });
  }

  /** Every call complete: pretty-printed arguments, and results where known. */
  show(calls: ToolCallState[]): void {
    this.clear();
    for (const call of calls) this.draw(call, true);
  }

  clear(): void {
    this.cards.clear();
    this.element.replaceChildren();
    this.element.hidden = true;
  }

  /** A call grew: its arguments as they are so far. */
  update(call: ToolCallState): void {
    this.draw(call, false);
  }

  private draw(call: ToolCallState, complete: boolean): void {
    const card = this.card(call);
    card.element.dataset.status = complete ? "complete" : "streaming";
    if (call.id) card.element.dataset.callId = call.id;
    card.name.textContent = call.name || "tool";
    card.args.textContent = complete ? prettyArguments(call.arguments) : call.arguments;
    card.result.hidden = call.result === undefined;
    if (call.result !== undefined) card.result.replaceChildren(resultLine(call.result));
  }

  private card(call: ToolCallState): Card {
    let card = this.cards.get(call.index);
    if (card) return card;
    const name = h("code", { class: "tool-call-name", testid: "tool-call-name" });
    const args = h("pre", { class: "tool-call-arguments", testid: "tool-call-arguments" });
    const result = h("div", { class: "tool-result-slot", attrs: { hidden: true } });
    const element = h(
      "section",
      { class: "tool-call", testid: "tool-call", attrs: { "aria-label": "Tool call" } },
      h("div", { class: "tool-call-head" }, h("span", { class: "tool-call-kind", text: "Tool call" }), name),
      args,
      result,
    );
    card = { element, name, args, result };
    this.cards.set(call.index, card);
    // In index order, whatever order the calls' first pieces came in.
    const next = [...this.cards.entries()].filter(([i]) => i > call.index).sort(([a], [b]) => a - b)[0];
    this.element.insertBefore(element, next ? next[1].element : null);
    this.element.hidden = false;
    return card;
  }
}

function resultLine(text: string): HTMLElement {
  return h(
    "div",
    { class: "tool-result", testid: "tool-result" },
    h("span", { class: "tool-result-kind", text: "Result" }),
    h("pre", { class: "tool-result-text", text }),
  );
}

/** A stored `tool` message whose call is not on the page: a compact line of its own. */
export function orphanToolResult(message: StoredMessage): HTMLElement {
  return h(
    "article",
    { class: "msg msg-tool", testid: "message-tool", attrs: { "aria-label": "Tool result" } },
    resultLine(message.content),
  );
}
