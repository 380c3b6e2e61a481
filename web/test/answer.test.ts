import { beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, type DoneData, type StoredMessage, type StreamEvent } from "../src/api";
import { AnswerController, type AnswerPage, type AnswerServices } from "../src/answer";
import type { Stream, StreamHandlers, StreamOutcome, StreamTarget } from "../src/stream";
import { Composer } from "../src/ui/composer";
import { type AnswerVersion, AnswerView, versionFromStored } from "../src/ui/messages";

const START = { stream_id: "st_1", conversation_id: "conv_1", message_id: "msg_1", model: "scripted", title: "Say hello" };
const DONE: DoneData = { finish_reason: "stop", usage: { input_tokens: 3, output_tokens: 4 }, timings: { ttft_ms: 12 } };

/** The answer as the server logs it: ids from 1, "Hello world" in three deltas. */
const LOG: StreamEvent[] = [
  { type: "start", id: 1, data: START },
  { type: "delta", id: 2, data: { text: "Hel" } },
  { type: "delta", id: 3, data: { text: "lo" } },
  { type: "delta", id: 4, data: { text: " world" } },
  { type: "done", id: 5, data: DONE },
];

/**
 * A stream client the test drives: it implements Stream as StreamClient does, and hands
 * the controller what the test sends. Like the server, it replays only what comes after
 * the event id it was asked to resume from.
 */
class FakeStream implements Stream {
  streamId: string | null = null;
  lastEventId = 0;
  aborted = false;
  private finish!: (outcome: StreamOutcome) => void;
  private readonly outcome = new Promise<StreamOutcome>((resolve) => { this.finish = resolve; });

  constructor(readonly target: StreamTarget, readonly handlers: StreamHandlers) {
    if ("streamId" in target) {
      this.streamId = target.streamId;
      this.lastEventId = target.lastEventId ?? 0;
    }
  }

  run(): Promise<StreamOutcome> {
    return this.outcome;
  }

  abort(): void {
    this.aborted = true;
    this.finish({ kind: "aborted" });
  }

  /** The server's log after the last event sent (at first: after the event this read
   *  was asked to resume from), up to event `upTo`. */
  play(log: StreamEvent[], upTo = Infinity): void {
    for (const event of log) if (event.id > this.lastEventId && event.id <= upTo) this.send(event);
  }

  send(event: StreamEvent): void {
    this.lastEventId = event.id;
    if (event.type === "start") this.streamId ??= event.data.stream_id;
    this.handlers.onEvent(event);
    if (event.type === "done") this.finish({ kind: "done", data: event.data });
    if (event.type === "error") this.finish({ kind: "error", data: event.data });
  }

  /** The read ends without a last event (retries ran out, an HTTP error, a gone stream). */
  end(outcome: StreamOutcome): void {
    this.finish(outcome);
  }
}

/** An event of a type this page does not know (DESIGN.md: a reader skips it). */
function unknown(type: string, id: number, data: unknown): StreamEvent {
  return { type, id, data } as unknown as StreamEvent;
}

function composer(): Composer {
  document.body.insertAdjacentHTML("beforeend", `
    <form id="composer-form"><textarea id="composer-input"></textarea>
      <button type="submit" id="send">Send</button><button type="button" id="stop" hidden>Stop</button></form>`);
  const get = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  return new Composer({
    form: get("composer-form"), input: get("composer-input"), send: get("send"), stop: get("stop"),
    onSend: () => true,
  });
}

function setUp(versions: AnswerVersion[] = [], conversationId: string | null = null) {
  const streams: FakeStream[] = [];
  let keys = 0;
  const clock = { ms: 0 };
  const server = {
    connect: (target: StreamTarget, handlers: StreamHandlers) => {
      const stream = new FakeStream(target, handlers);
      streams.push(stream);
      return stream;
    },
    cancel: vi.fn(async (_streamId: string): Promise<unknown> => ({ cancelled: true })),
    stored: vi.fn(async (_conversation: string, _message: string): Promise<StoredMessage | undefined> => undefined),
    newKey: () => `key-${++keys}`,
    now: () => clock.ms,
  } satisfies AnswerServices;
  const page = {
    conversation: conversationId,
    started: vi.fn((id: string, _title: string | undefined) => { page.conversation = id; }),
    regenerate: vi.fn(),
    tooLong: vi.fn((_view: AnswerView, _text: string, _message: string) => undefined),
    announced: [] as string[],
  };
  const pagePort: AnswerPage = {
    conversationId: () => page.conversation,
    settings: () => ({ model: "scripted", options: { delay_ms: 5 } }),
    started: page.started,
    busy: () => undefined,
    grew: () => undefined,
    regenerate: page.regenerate,
    tooLong: page.tooLong,
    announce: (text) => page.announced.push(text),
  };
  const controller = new AnswerController(pagePort, composer(), server);
  const view = new AnswerView(versions, { regenerate: () => controller.regenerate(view), copied: () => undefined });
  document.body.append(view.element);
  const find = (testid: string) => view.element.querySelector<HTMLElement>(`[data-testid=${testid}]`);
  return {
    controller, view, server, page, streams, clock,
    stream: () => streams[streams.length - 1],
    /** the answer's text as the person sees it (pending frames drawn now) */
    text: () => {
      view.flush();
      return (find("answer-content")?.textContent ?? "").trim();
    },
    /** the Thinking block's text as the person sees it (pending frames drawn now) */
    thinking: () => {
      view.flush();
      return (find("thinking-content")?.textContent ?? "").trim();
    },
    thinkingBlock: () => find("thinking") as HTMLDetailsElement,
    status: () => view.element.dataset.status,
    find,
    stopButton: () => document.getElementById("stop") as HTMLButtonElement,
    ended: () => vi.waitFor(() => expect(controller.active).toBeNull()),
  };
}

describe("AnswerController", () => {
  beforeEach(() => {
    document.body.replaceChildren();
  });

  it("posts the message, and the text accumulates across deltas to a complete answer", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    expect(t.stream().target).toEqual({
      url: "/api/chat",
      body: { messages: [{ role: "user", content: "Say hello" }], model: "scripted", conversation_id: undefined,
        options: { delay_ms: 5 } },
      idempotencyKey: "key-1",
    });
    expect(t.stopButton().hidden).toBe(false);
    t.stream().play(LOG, 2);
    expect(t.text()).toBe("Hel");
    expect(t.page.started).toHaveBeenCalledWith("conv_1", "Say hello");
    t.stream().play(LOG, 3);
    expect(t.text()).toBe("Hello");
    expect(t.status()).toBe("streaming");
    expect(t.find("cursor")).not.toBeNull();
    t.stream().play(LOG);
    await t.ended();
    expect(t.text()).toBe("Hello world");
    expect(t.status()).toBe("complete");
    expect(t.find("cursor")).toBeNull();
    expect(t.find("stats")?.textContent).toContain("4 tokens");
    expect(t.stopButton().hidden).toBe(true);
    expect(t.page.announced).toContain("Answer complete");
  });

  it("passes on that a start event has no title (a server before issue 12)", () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    const { title: _, ...untitled } = START;
    t.stream().send({ type: "start", id: 1, data: untitled });
    expect(t.page.started).toHaveBeenCalledWith("conv_1", undefined);
  });

  it("stops: cancels on the server and ends cancelled, keeping the partial text", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 3);
    t.stopButton().click();
    expect(t.server.cancel).toHaveBeenCalledWith("st_1");
    expect(t.stopButton().getAttribute("aria-label")).toBe("Stopping");
    expect(t.status()).toBe("streaming"); // until the server confirms
    t.stream().send({ type: "done", id: 4, data: { finish_reason: "cancelled" } });
    await t.ended();
    expect(t.status()).toBe("cancelled");
    expect(t.find("status-badge")?.hidden).toBe(false);
    expect(t.find("status-badge")?.textContent).toBe("Stopped");
    expect(t.text()).toBe("Hello");
    expect(t.stopButton().hidden).toBe(true);
  });

  it("sends a Stop pressed before the stream id is known as soon as the start event brings it", () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.controller.stop();
    expect(t.server.cancel).not.toHaveBeenCalled();
    t.stream().play(LOG, 1);
    expect(t.server.cancel).toHaveBeenCalledWith("st_1");
  });

  it("stops reading here when the cancel request fails, and says the server may have gone on", async () => {
    const t = setUp();
    t.server.cancel.mockRejectedValueOnce(new ApiError(0, "network_error", "offline"));
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 3);
    t.controller.stop();
    await t.ended();
    expect(t.stream().aborted).toBe(true);
    expect(t.status()).toBe("cancelled");
    expect(t.text()).toBe("Hello");
    expect(t.find("error-banner")?.textContent).toContain("Could not reach the server to stop the answer");
  });

  it("keeps the partial text on an error event and shows the error, with a Retry", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 3);
    t.stream().send({ type: "error", id: 4, data: { code: "upstream_timeout", message: "no answer in 30 s" } });
    await t.ended();
    expect(t.status()).toBe("error");
    expect(t.text()).toBe("Hello");
    expect(t.find("error-banner")?.textContent).toContain("The model provider did not answer in time. (no answer in 30 s)");
    t.find("retry")?.click();
    expect(t.page.regenerate).toHaveBeenCalledTimes(1);
  });

  it("shows a reconnect while the stream client resumes by itself", () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 2);
    const error = new ApiError(0, "network_error", "dropped");
    t.stream().handlers.onReconnecting?.({ attempt: 1, delayMs: 1000, error });
    expect(t.find("connection")?.hidden).toBe(false);
    expect(t.find("connection")?.textContent).toBe("Reconnecting…");
    t.stream().handlers.onReconnected?.();
    expect(t.find("connection")?.hidden).toBe(true);
  });

  it("resumes a dropped connection from the last event id, without repeating text", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 3);
    t.stream().end({ kind: "failed", error: new ApiError(0, "network_error", "dropped") });
    await t.ended();
    expect(t.find("connection")?.textContent).toBe("Disconnected");
    expect(t.find("error-banner")?.textContent).toContain("Lost the connection to the answer.");
    expect(t.text()).toBe("Hello");

    t.find("retry")?.click();
    expect(t.streams).toHaveLength(2);
    expect(t.stream().target).toEqual({ streamId: "st_1", lastEventId: 3 });
    expect(t.find("error-banner")).toBeNull();
    t.stream().play(LOG); // the server sends what comes after event 3
    await t.ended();
    expect(t.text()).toBe("Hello world");
    expect(t.status()).toBe("complete");
    expect(t.find("connection")?.hidden).toBe(true);
  });

  it("re-posts with the same Idempotency-Key when the POST never got an answer", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().end({ kind: "failed", error: new ApiError(0, "network_error", "offline") });
    await t.ended();
    expect(t.status()).toBe("error");
    expect(t.find("error-banner")?.textContent).toContain("Can't reach the server");
    t.find("retry")?.click();
    expect(t.stream().target).toMatchObject({ url: "/api/chat", idempotencyKey: "key-1" });
    expect(t.view.versions).toHaveLength(1); // the failed try is replaced, not kept
    t.stream().play(LOG);
    await t.ended();
    expect(t.text()).toBe("Hello world");
  });

  it("gives a message too long for the model back to be shortened, with no Retry (issue 14)", async () => {
    const t = setUp();
    t.controller.send(t.view, "a very long message");
    const message = "The message is 9,100 tokens, 908 over this model's context window of 8,192 tokens: shorten it.";
    t.stream().end({ kind: "failed", error: new ApiError(400, "context_length_exceeded", message) });
    await t.ended();
    expect(t.page.tooLong).toHaveBeenCalledWith(t.view, "a very long message", message);
    expect(t.find("retry")).toBeNull();
    expect(t.stream().target).toMatchObject({ url: "/api/chat" }); // posted once, never again
    expect(t.streams).toHaveLength(1);
    expect(t.page.announced).toContain("Error: " + message);
  });

  it("shows a regenerate refused as too long with the server's words and no Retry", async () => {
    const t = setUp([{
      id: "msg_0", status: "complete", content: "Old answer", model: "scripted", usage: null, timings: null,
      error: null, streamId: "st_0", reasoning: "", thought: null, toolCalls: [],
    }], "conv_1");
    t.controller.regenerate(t.view);
    const message = "The message is 9,100 tokens ... over this model's context window of 8,192 tokens: shorten it.";
    t.stream().end({ kind: "failed", error: new ApiError(400, "context_length_exceeded", message) });
    await t.ended();
    expect(t.find("error-banner")?.textContent).toContain(message);
    expect(t.find("retry")).toBeNull();
    expect(t.page.tooLong).not.toHaveBeenCalled();
  });

  it("still offers Retry for other refusals before the answer started", async () => {
    const t = setUp();
    t.controller.send(t.view, "hi");
    t.stream().end({ kind: "failed", error: new ApiError(503, "overloaded", "Busy") });
    await t.ended();
    expect(t.find("retry")).not.toBeNull();
    expect(t.page.tooLong).not.toHaveBeenCalled();
  });

  it("skips events it does not know", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 2);
    t.stream().send(unknown("citation", 3, { text: "thinking it over" }));
    t.stream().send(unknown("x_vendor_note", 4, { index: 0, id: "call_1", name: "lookup", arguments: "{" }));
    expect(t.status()).toBe("streaming");
    t.stream().send({ type: "delta", id: 5, data: { text: "lo" } });
    t.stream().send({ type: "done", id: 6, data: DONE });
    await t.ended();
    expect(t.text()).toBe("Hello");
    expect(t.status()).toBe("complete");
    expect(t.thinkingBlock().hidden).toBe(true);
    expect(t.find("tool-calls")?.hidden).toBe(true);
  });

  it("regenerates as a new version of the answer, keeping the earlier one", async () => {
    const earlier: AnswerVersion = {
      id: "msg_0", status: "complete", content: "Hi", model: "scripted", usage: null, timings: null, error: null,
      streamId: "st_0", reasoning: "", thought: null, toolCalls: [],
    };
    const t = setUp([earlier], "conv_1");
    t.controller.regenerate(t.view);
    expect(t.stream().target).toEqual({
      url: "/api/conversations/conv_1/regenerate",
      body: { model: "scripted", options: { delay_ms: 5 } },
    });
    t.stream().play(LOG);
    await t.ended();
    expect(t.text()).toBe("Hello world");
    expect(t.find("version-label")?.textContent).toBe("2 / 2");
    expect(t.view.versions.map((v) => v.content)).toEqual(["Hi", "Hello world"]);
  });

  it("shows the stored answer when the stream is gone", async () => {
    const t = setUp();
    t.server.stored.mockResolvedValueOnce({
      id: "msg_1", role: "assistant", content: "Hello world, as stored", status: "complete", model: "scripted",
      created: "2025-01-01T00:00:00Z", stream_id: "st_1", reply_to: null, error: null, usage: null, timings: null,
    });
    t.controller.send(t.view, "Say hello");
    t.stream().play(LOG, 2);
    t.stream().end({ kind: "gone", status: 404 });
    await vi.waitFor(() => expect(t.status()).toBe("complete"));
    expect(t.server.stored).toHaveBeenCalledWith("conv_1", "msg_1");
    expect(t.text()).toBe("Hello world, as stored");
  });
});

/** An answer that thinks first: reasoning in three pieces, then "Hello world". */
const THINKING_LOG: StreamEvent[] = [
  { type: "start", id: 1, data: START },
  { type: "reasoning", id: 2, data: { text: "The user " } },
  { type: "reasoning", id: 3, data: { text: "wants a **greeting**." } },
  { type: "reasoning", id: 4, data: { text: " Keep it short." } },
  { type: "delta", id: 5, data: { text: "Hello" } },
  { type: "delta", id: 6, data: { text: " world" } },
  { type: "done", id: 7, data: { ...DONE, reasoning_length: 44 } },
];

describe("AnswerController: reasoning and tool calls (issue 13)", () => {
  beforeEach(() => {
    document.body.replaceChildren();
  });

  it("shows reasoning that arrives before any text in an open Thinking block, at once", () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(THINKING_LOG, 1);
    expect(t.thinkingBlock().hidden).toBe(true); // nothing to show yet
    t.stream().play(THINKING_LOG, 2);
    expect(t.thinkingBlock().hidden).toBe(false);
    expect(t.thinkingBlock().open).toBe(true);
    expect(t.find("thinking-label")?.textContent).toBe("Thinking…");
    expect(t.thinking()).toBe("The user");
    t.stream().play(THINKING_LOG, 3);
    expect(t.thinking()).toBe("The user wants a greeting.");
    expect(t.find("thinking-content")?.querySelector("strong")?.textContent).toBe("greeting"); // markdown, as the answer
    expect(t.text()).toBe("");
    expect(t.status()).toBe("streaming");
    // The block sits above the answer's text.
    const order = [...t.view.element.children].map((e) => (e as HTMLElement).dataset.testid);
    expect(order.indexOf("thinking")).toBeLessThan(order.indexOf("answer-content"));
  });

  it("collapses the Thinking block at the first delta and says how long it thought", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.clock.ms = 1_000;
    t.stream().play(THINKING_LOG, 2);
    t.clock.ms = 6_000;
    t.stream().play(THINKING_LOG, 3);
    t.clock.ms = 13_000;
    t.stream().play(THINKING_LOG, 4);
    t.clock.ms = 14_000; // the first text comes later: not part of the thinking
    t.stream().play(THINKING_LOG, 5);
    expect(t.thinkingBlock().open).toBe(false);
    expect(t.find("thinking-label")?.textContent).toBe("Thought for 12 s");
    expect(t.text()).toBe("Hello");
    // Reopened by the reader, it stays open as the text goes on.
    t.find("thinking-summary")?.click();
    expect(t.thinkingBlock().open).toBe(true);
    t.stream().play(THINKING_LOG);
    await t.ended();
    expect(t.thinkingBlock().open).toBe(true);
    expect(t.thinking()).toBe("The user wants a greeting. Keep it short.");
    expect(t.find("thinking-label")?.textContent).toBe("Thought for 12 s");
    expect(t.text()).toBe("Hello world");
    expect(t.view.current.reasoning).toBe("The user wants a **greeting**. Keep it short.");
  });

  it("assembles tool call pieces by index, interleaved, and pretty-prints them at done", async () => {
    const t = setUp();
    t.controller.send(t.view, "Weather and time?");
    const log: StreamEvent[] = [
      { type: "start", id: 1, data: START },
      { type: "delta", id: 2, data: { text: "Checking." } },
      { type: "tool_call", id: 3, data: { index: 0, id: "call_w", name: "get_weather", arguments: "{\"city\":" } },
      { type: "tool_call", id: 4, data: { index: 1, id: "call_t", name: "get_time", arguments: "{\"tz\": \"" } },
      { type: "tool_call", id: 5, data: { index: 0, arguments: " \"Paris\"" } },
      { type: "tool_call", id: 6, data: { index: 1, arguments: "CET\"}" } },
      { type: "tool_call", id: 7, data: { index: 0, arguments: ", \"unit\": \"c\"}" } },
      { type: "done", id: 8, data: { finish_reason: "tool_calls", tool_calls: [
        { id: "call_w", name: "get_weather", arguments: "{\"city\": \"Paris\", \"unit\": \"c\"}" },
        { id: "call_t", name: "get_time", arguments: "{\"tz\": \"CET\"}" },
      ] } },
    ];
    const cards = () => [...t.view.element.querySelectorAll<HTMLElement>("[data-testid=tool-call]")].map((card) => ({
      name: card.querySelector("[data-testid=tool-call-name]")?.textContent,
      args: card.querySelector("[data-testid=tool-call-arguments]")?.textContent,
      status: card.dataset.status,
    }));
    t.stream().play(log, 5);
    expect(cards()).toEqual([
      { name: "get_weather", args: "{\"city\": \"Paris\"", status: "streaming" },
      { name: "get_time", args: "{\"tz\": \"", status: "streaming" },
    ]);
    t.stream().play(log, 7);
    expect(t.view.current.toolCalls.map((c) => [c.index, c.id, c.arguments])).toEqual([
      [0, "call_w", "{\"city\": \"Paris\", \"unit\": \"c\"}"],
      [1, "call_t", "{\"tz\": \"CET\"}"],
    ]);
    t.stream().play(log);
    await t.ended();
    expect(cards()).toEqual([
      { name: "get_weather", args: "{\n  \"city\": \"Paris\",\n  \"unit\": \"c\"\n}", status: "complete" },
      { name: "get_time", args: "{\n  \"tz\": \"CET\"\n}", status: "complete" },
    ]);
    expect(t.text()).toBe("Checking.");
    expect(t.status()).toBe("complete");
    // Below the answer's text.
    const order = [...t.view.element.children].map((e) => (e as HTMLElement).dataset.testid);
    expect(order.indexOf("tool-calls")).toBeGreaterThan(order.indexOf("answer-content"));
  });

  it("keeps cut-off arguments as they came when the stream fails mid-call", async () => {
    const t = setUp();
    t.controller.send(t.view, "Weather?");
    t.stream().send({ type: "start", id: 1, data: START });
    t.stream().send({ type: "tool_call", id: 2, data: { index: 0, id: "call_w", name: "get_weather", arguments: "{\"ci" } });
    t.stream().send({ type: "error", id: 3, data: { code: "upstream_disconnected", message: "gone" } });
    await t.ended();
    expect(t.find("tool-call-arguments")?.textContent).toBe("{\"ci");
    expect(t.find("tool-call")?.dataset.status).toBe("complete");
  });

  it("resumes a drop in the middle of the reasoning without repeating any of it", async () => {
    const t = setUp();
    t.controller.send(t.view, "Say hello");
    t.stream().play(THINKING_LOG, 3);
    t.stream().end({ kind: "failed", error: new ApiError(0, "network_error", "dropped") });
    await t.ended();
    expect(t.thinking()).toBe("The user wants a greeting.");
    t.find("retry")?.click();
    expect(t.stream().target).toEqual({ streamId: "st_1", lastEventId: 3 });
    t.stream().play(THINKING_LOG);
    await t.ended();
    expect(t.view.current.reasoning).toBe("The user wants a **greeting**. Keep it short.");
    expect(t.thinking()).toBe("The user wants a greeting. Keep it short.");
    expect(t.text()).toBe("Hello world");
    expect(t.find("thinking-content")?.querySelectorAll("strong")).toHaveLength(1);
  });

  it("replays an answer still streaming with its reasoning once, and no time it cannot know", async () => {
    const stored: AnswerVersion = {
      id: "msg_1", status: "streaming", content: "Hel", model: "scripted", usage: null, timings: null, error: null,
      streamId: "st_1", reasoning: "The user wants a **greeting**.", thought: null, toolCalls: [],
    };
    const t = setUp([stored], "conv_1");
    t.controller.replay(t.view);
    expect(t.stream().target).toEqual({ streamId: "st_1", lastEventId: 0 });
    t.clock.ms = 1_000;
    t.stream().play(THINKING_LOG, 4);
    t.clock.ms = 9_000;
    t.stream().play(THINKING_LOG);
    await t.ended();
    expect(t.thinking()).toBe("The user wants a greeting. Keep it short.");
    expect(t.find("thinking-label")?.textContent).toBe("Thought");
    expect(t.text()).toBe("Hello world");
  });

  it("keeps the thinking time it measured when a gone stream's stored answer replaces it", async () => {
    const t = setUp();
    t.server.stored.mockResolvedValueOnce({
      id: "msg_1", role: "assistant", content: "Hello world", status: "complete", model: "scripted",
      created: "2025-01-01T00:00:00Z", stream_id: "st_1", reply_to: null, error: null, usage: null, timings: null,
      reasoning: "The user wants a **greeting**. Keep it short.", tool_calls: null,
    });
    t.controller.send(t.view, "Say hello");
    t.clock.ms = 2_000;
    t.stream().play(THINKING_LOG, 2);
    t.clock.ms = 5_000;
    t.stream().play(THINKING_LOG, 3);
    t.stream().end({ kind: "gone", status: 404 });
    await vi.waitFor(() => expect(t.status()).toBe("complete"));
    expect(t.find("thinking-label")?.textContent).toBe("Thought for 3 s");
    expect(t.view.current.reasoning).toBe("The user wants a **greeting**. Keep it short.");
    expect(t.text()).toBe("Hello world");
  });

  it("shows a stored answer's reasoning collapsed, drawn when opened, and tool results under their calls", () => {
    const message: StoredMessage = {
      id: "msg_1", role: "assistant", content: "Checking.", status: "complete", model: "scripted",
      created: "2025-01-01T00:00:00Z", stream_id: "st_1", reply_to: null, error: null, usage: null, timings: null,
      reasoning: "Look up the *weather*.",
      tool_calls: [{ id: "call_w", name: "get_weather", arguments: "{\"city\":\"Paris\"}" }],
    };
    const view = new AnswerView([versionFromStored(message, new Map([["call_w", "<b>sunny</b>"]]))],
      { regenerate: () => undefined, copied: () => undefined });
    document.body.append(view.element);
    const thinking = view.element.querySelector<HTMLDetailsElement>("[data-testid=thinking]")!;
    expect(thinking.hidden).toBe(false);
    expect(thinking.open).toBe(false);
    expect(thinking.querySelector("[data-testid=thinking-label]")?.textContent).toBe("Thought");
    thinking.open = true;
    thinking.dispatchEvent(new Event("toggle"));
    expect(thinking.querySelector("em")?.textContent).toBe("weather");
    expect(view.element.querySelector("[data-testid=tool-call-arguments]")?.textContent).toBe("{\n  \"city\": \"Paris\"\n}");
    const result = view.element.querySelector("[data-testid=tool-result]");
    expect(result?.textContent).toContain("<b>sunny</b>"); // a tool's output is text, never HTML
    expect(result?.querySelector("b")).toBeNull();
  });

  it("renders hostile reasoning and arguments inert, as it does the answer", async () => {
    const t = setUp();
    t.controller.send(t.view, "Be evil");
    t.stream().send({ type: "start", id: 1, data: START });
    t.stream().send({ type: "reasoning", id: 2, data: { text:
      "<img src=x onerror=\"window.__pwned = 1\"> <script>window.__pwned = 2</script> " +
      "[link](javascript:window.__pwned=3) <a href=\"javascript:alert(1)\">a</a> <svg onload=alert(1)></svg>\n\nDone." } });
    t.stream().send({ type: "tool_call", id: 3, data: { index: 0, id: "call_x", name: "<img src=x onerror=alert(1)>",
      arguments: "{\"html\": \"<script>alert(1)</script>\"}" } });
    t.stream().send({ type: "done", id: 4, data: { finish_reason: "tool_calls", tool_calls: [
      { id: "call_x", name: "<img src=x onerror=alert(1)>", arguments: "{\"html\": \"<script>alert(1)</script>\"}" },
    ] } });
    await t.ended();
    expect(t.thinking()).toContain("Done.");
    // The reasoning and the cards (the answer's own buttons draw svg icons).
    for (const root of [t.find("thinking")!, t.find("tool-calls")!]) {
      for (const selector of ["img", "script", "svg", "iframe"]) expect(root.querySelectorAll(selector)).toHaveLength(0);
      const handlers = [...root.querySelectorAll("*")].flatMap((e) => [...e.attributes].map((a) => a.name))
        .filter((name) => name.startsWith("on"));
      expect(handlers).toEqual([]);
      const hrefs = [...root.querySelectorAll("a")].map((a) => a.getAttribute("href"));
      expect(hrefs.filter((href) => href !== null && /^\s*javascript:/i.test(href))).toEqual([]);
    }
    expect(t.find("tool-call-name")?.textContent).toBe("<img src=x onerror=alert(1)>");
    expect(t.find("tool-call-arguments")?.textContent).toContain("<script>alert(1)</script>");
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });
});
