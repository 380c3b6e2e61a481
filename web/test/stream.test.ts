import { describe, expect, it, vi } from "vitest";
import { type StreamEvent, Unauthorized, onUnauthorized } from "../src/api";
import { StreamClient, type StreamOptions, type StreamTarget } from "../src/stream";

/** One SSE event as the server writes it. */
function sse(id: number, type: string, data: unknown): string {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

const START = { stream_id: "st_1", conversation_id: "conv_1", message_id: "msg_1", model: "scripted" };
const DONE = { finish_reason: "stop", usage: { input_tokens: 3, output_tokens: 4 }, timings: { ttft_ms: 5 }, length: 20 };

/** The events of an answer whose deltas are `words`, ids from 1. */
function answer(words: string[], end: "done" | "error" = "done"): string[] {
  const events = [sse(1, "start", START)];
  words.forEach((text, i) => events.push(sse(i + 2, "delta", { text })));
  const last = words.length + 2;
  events.push(end === "done" ? sse(last, "done", DONE) : sse(last, "error", { code: "upstream_error", message: "boom", length: 3 }));
  return events;
}

const DROP = Symbol("drop");
const HANG = Symbol("hang");
type Piece = string | Uint8Array | typeof DROP | typeof HANG;

/** A streaming Response: its body yields `pieces`, then closes, errors (DROP) or hangs (HANG). */
function eventStream(pieces: Piece[], headers: Record<string, string> = {}, status = 200): Response {
  const encoder = new TextEncoder();
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i >= pieces.length) {
        controller.close();
        return;
      }
      const piece = pieces[i++];
      if (piece === DROP) {
        controller.error(new TypeError("network error"));
      } else if (piece === HANG) {
        return new Promise<void>(() => undefined);
      } else {
        controller.enqueue(typeof piece === "string" ? encoder.encode(piece) : piece);
      }
      return undefined;
    },
  });
  return new Response(body, { status, headers: { "Content-Type": "text/event-stream", ...headers } });
}

function jsonError(status: number, code: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message: `${code} happened` } }), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** fetch that answers each call with the next of `responses` (a Response, or an Error to throw). */
function fakeFetch(responses: Array<Response | Error | (() => Response)>) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    calls.push({
      url: String(input),
      method: init?.method ?? "GET",
      headers,
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    });
    const next = responses.shift();
    if (next === undefined) throw new Error(`unexpected request ${init?.method} ${String(input)}`);
    if (next instanceof Error) throw next;
    return typeof next === "function" ? next() : next;
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

function client(target: StreamTarget, responses: Array<Response | Error | (() => Response)>, options: Partial<StreamOptions> = {}) {
  const { fetch, calls } = fakeFetch(responses);
  const events: StreamEvent[] = [];
  const sleeps: number[] = [];
  const c = new StreamClient(target, {
    fetch,
    sleep: async (ms) => { sleeps.push(ms); },
    random: () => 0.5, // no jitter
    onEvent: (event) => events.push(event),
    ...options,
  });
  const text = () => events.filter((e) => e.type === "delta").map((e) => (e.data as { text: string }).text).join("");
  return { client: c, calls, events, sleeps, text };
}

const POST: StreamTarget = { url: "/api/chat", body: { messages: [{ role: "user", content: "hi" }] }, idempotencyKey: "key-1" };
const HEADERS = { "X-Stream-Id": "st_1", "X-Conversation-Id": "conv_1" };

describe("StreamClient", () => {
  it("posts the request and reads the answer to its end", async () => {
    const t = client(POST, [eventStream(["retry: 1000\n\n", ...answer(["Hello", " world"])], HEADERS)]);
    const outcome = await t.client.run();
    expect(outcome).toEqual({ kind: "done", data: DONE });
    expect(t.text()).toBe("Hello world");
    expect(t.events.map((e) => e.type)).toEqual(["start", "delta", "delta", "done"]);
    expect(t.calls).toHaveLength(1);
    expect(t.calls[0]).toMatchObject({
      url: "/api/chat",
      method: "POST",
      headers: { "idempotency-key": "key-1", "content-type": "application/json", accept: "text/event-stream" },
      body: { messages: [{ role: "user", content: "hi" }] },
    });
    expect(t.client.streamId).toBe("st_1");
    expect(t.client.conversationId).toBe("conv_1");
    expect(t.client.lastEventId).toBe(4);
  });

  it("hands on reasoning and tool_call events, and skips the ones it does not know", async () => {
    const t = client(POST, [eventStream([
      sse(1, "start", START),
      sse(2, "reasoning", { text: "Think." }),
      sse(3, "x_unknown", { text: "skip me" }),
      sse(4, "delta", { text: "Hi" }),
      sse(5, "tool_call", { index: 0, id: "call_1", name: "f", arguments: "{}" }),
      sse(6, "done", DONE),
    ], HEADERS)]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.events.map((e) => e.type)).toEqual(["start", "reasoning", "delta", "tool_call", "done"]);
    expect(t.client.lastEventId).toBe(6);
  });

  it("resumes after a dropped connection from the last event id, without repeating text", async () => {
    const events = answer(["one ", "two ", "three ", "four"]);
    const t = client(POST, [
      eventStream([...events.slice(0, 3), DROP], HEADERS), // start, "one ", "two ", then the network fails
      // The server replays from an earlier id than asked (an overlap): those are skipped.
      eventStream(events.slice(1)),
    ]);
    const outcome = await t.client.run();
    expect(outcome.kind).toBe("done");
    expect(t.text()).toBe("one two three four");
    expect(t.calls[1]).toMatchObject({ url: "/api/streams/st_1", method: "GET", headers: { "last-event-id": "3" } });
    expect(t.events.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("resumes when the body ends before the last event, even in the middle of one", async () => {
    const events = answer(["a", "b", "c"]);
    const cut = events[2].slice(0, 10); // half an event: never dispatched
    const t = client(POST, [eventStream([events[0], events[1], cut], HEADERS), eventStream(events.slice(2))]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.text()).toBe("abc");
    expect(t.calls[1].headers["last-event-id"]).toBe("2");
  });

  it("learns the stream id from the start event when the header is missing", async () => {
    const events = answer(["x", "y"]);
    const t = client(POST, [eventStream([events[0], events[1], DROP]), eventStream(events.slice(2))]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.calls[1].url).toBe("/api/streams/st_1");
    expect(t.text()).toBe("xy");
  });

  it("re-sends the POST with the same Idempotency-Key when it never got an answer", async () => {
    const t = client(POST, [new TypeError("Failed to fetch"), eventStream(answer(["ok"]), HEADERS)]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.calls.map((c) => [c.method, c.headers["idempotency-key"]])).toEqual([["POST", "key-1"], ["POST", "key-1"]]);
    expect(t.text()).toBe("ok");
  });

  it("does not re-send a POST without an Idempotency-Key (it could start a second answer)", async () => {
    const t = client({ url: "/api/conversations/c/regenerate", body: {} }, [new TypeError("Failed to fetch")]);
    const outcome = await t.client.run();
    expect(outcome).toMatchObject({ kind: "failed", error: { status: 0, code: "network_error" } });
    expect(t.calls).toHaveLength(1);
  });

  it("gives up after a bounded number of attempts, backing off", async () => {
    const failures = Array.from({ length: 10 }, () => new TypeError("offline"));
    const reconnecting: number[] = [];
    const t = client({ streamId: "st_9", lastEventId: 12 }, failures, {
      maxRetries: 4,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      onReconnecting: ({ attempt }) => reconnecting.push(attempt),
    });
    const outcome = await t.client.run();
    expect(outcome).toMatchObject({ kind: "failed", error: { status: 0 } });
    expect(t.calls).toHaveLength(5);
    expect(t.sleeps).toEqual([100, 200, 400, 800]);
    expect(reconnecting).toEqual([1, 2, 3, 4]);
    expect(t.calls.every((c) => c.headers["last-event-id"] === "12")).toBe(true);
    // Retry later from the same point: a new client with the same resume point.
    expect(t.client.lastEventId).toBe(12);
  });

  it("starts counting again after progress", async () => {
    const events = answer(["1", "2", "3", "4"]);
    const t = client(POST, [
      eventStream([events[0], DROP], HEADERS),
      new TypeError("offline"),
      eventStream([events[1], DROP]),
      new TypeError("offline"),
      eventStream([events[2], DROP]),
      new TypeError("offline"),
      eventStream(events.slice(3)),
    ], { maxRetries: 2, baseDelayMs: 10 });
    expect((await t.client.run()).kind).toBe("done");
    expect(t.text()).toBe("1234");
  });

  it("uses the server's retry: value as the first backoff delay", async () => {
    const events = answer(["a"]);
    const t = client(POST, [eventStream(["retry: 2500\n\n", events[0], DROP], HEADERS), eventStream(events.slice(1))], { baseDelayMs: 10 });
    await t.client.run();
    expect(t.sleeps).toEqual([2500]);
  });

  it("retries a 503 while resuming, and stops at a 429 with its Retry-After", async () => {
    const events = answer(["a", "b"]);
    const t = client({ streamId: "st_1", lastEventId: 2 }, [jsonError(503, "unavailable"), eventStream(events)]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.text()).toBe("b"); // event 2 ("a") had been handled before

    const limited = client(POST, [jsonError(429, "rate_limited", { "Retry-After": "7" })]);
    const outcome = await limited.client.run();
    expect(outcome).toMatchObject({ kind: "failed", error: { status: 429, code: "rate_limited", retryAfter: 7 } });
    expect(limited.calls).toHaveLength(1);
  });

  it("reports a 401 as it is, without retrying, and tells the page (sign in again)", async () => {
    const told: Unauthorized[] = [];
    const stop = onUnauthorized((error) => told.push(error));
    try {
      const t = client(POST, [jsonError(401, "unauthorized")]);
      const outcome = await t.client.run();
      expect(outcome).toMatchObject({ kind: "failed", error: { status: 401, code: "unauthorized", message: "unauthorized happened" } });
      expect(outcome.kind === "failed" && outcome.error).toBeInstanceOf(Unauthorized);
      expect(t.calls).toHaveLength(1);
      expect(told).toHaveLength(1);
    } finally {
      stop();
    }
  });

  it("stops resuming at a 401 (key revoked mid-answer), keeping its resume point", async () => {
    const told: Unauthorized[] = [];
    const stop = onUnauthorized((error) => told.push(error));
    try {
      const events = answer(["one ", "two "]);
      const t = client(POST, [eventStream([...events.slice(0, 2), DROP], HEADERS), jsonError(401, "unauthorized")]);
      const outcome = await t.client.run();
      expect(outcome.kind).toBe("failed");
      expect(told).toHaveLength(1);
      expect(t.calls[1]).toMatchObject({ url: "/api/streams/st_1", headers: { "last-event-id": "2" } });
      expect([t.client.streamId, t.client.lastEventId]).toEqual(["st_1", 2]);
    } finally {
      stop();
    }
  });

  it("tells when the stream is gone: 204 past its end, 404 expired", async () => {
    const ended = client({ streamId: "st_1", lastEventId: 9 }, [new Response(null, { status: 204 })]);
    expect(await ended.client.run()).toEqual({ kind: "gone", status: 204 });
    const expired = client({ streamId: "st_1", lastEventId: 3 }, [jsonError(404, "stream_not_found")]);
    expect(await expired.client.run()).toEqual({ kind: "gone", status: 404 });
  });

  it("ends with the server's error event, keeping the partial text", async () => {
    const t = client(POST, [eventStream(answer(["partial"], "error"), HEADERS)]);
    const outcome = await t.client.run();
    expect(outcome).toEqual({ kind: "error", data: { code: "upstream_error", message: "boom", length: 3 } });
    expect(t.text()).toBe("partial");
  });

  it("replays a stream from its start when no event was handled (page reload)", async () => {
    const t = client({ streamId: "st_1" }, [eventStream(answer(["again"]))]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.calls[0].url).toBe("/api/streams/st_1");
    expect(t.calls[0].headers["last-event-id"]).toBeUndefined();
    expect(t.events[0].type).toBe("start");
  });

  it("stops reading on abort()", async () => {
    const events = answer(["a", "b"]);
    const t = client(POST, [eventStream([events[0], events[1], HANG], HEADERS)], {
      onEvent: (event) => {
        if (event.type === "delta") t.client.abort();
      },
    });
    expect(await t.client.run()).toEqual({ kind: "aborted" });
  });

  it("treats a silent connection as dropped, and resumes", async () => {
    const events = answer(["a", "b"]);
    const t = client(POST, [eventStream([events[0], events[1], HANG], HEADERS), eventStream(events.slice(2))], {
      stallTimeoutMs: 30,
    });
    expect((await t.client.run()).kind).toBe("done");
    expect(t.text()).toBe("ab");
    expect(t.calls[1].headers["last-event-id"]).toBe("2");
  });

  it("ignores event types it does not know", async () => {
    const events = answer(["a"]);
    const t = client(POST, [eventStream([events[0], sse(2, "usage", { n: 1 }), sse(3, "delta", { text: "b" }), sse(4, "done", DONE)], HEADERS)]);
    expect((await t.client.run()).kind).toBe("done");
    expect(t.events.map((e) => e.type)).toEqual(["start", "delta", "done"]);
    expect(t.text()).toBe("b");
  });
});
