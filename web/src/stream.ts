/**
 * The stream client: starts an answer (POST /api/chat or /regenerate) or reads one
 * (GET /api/streams/{id}), and keeps reading it to its `done` or `error` event.
 *
 * A dropped connection, a stalled one or a 502/503/504 is not the end: the client
 * resumes with GET /api/streams/{id} and `Last-Event-ID` set to the last event it
 * handled, so the text continues where it was. Events whose id it has already handled
 * are skipped, so nothing is shown twice whatever the server replays. Retries are
 * bounded (exponential backoff, reset by progress); after the last one the outcome is
 * `failed` and the page offers a Retry that resumes from the same point.
 *
 * fetch, not EventSource, reads the streams: it sees the HTTP status (EventSource can
 * not tell a 404 or 429 from a network error), sends `Last-Event-ID` itself, and
 * keeps one reconnect policy for POST and GET. The wire format and the resume point
 * are exactly those of EventSource.
 */

import {
  ApiError, type DoneData, type ErrorData, type StreamEvent, errorFromResponse, networkError, reported,
} from "./api";
import { SseDecoder, type SseEvent } from "./sse";

export type StreamOutcome =
  /** the stream ended with `done` */
  | { kind: "done"; data: DoneData }
  /** the stream ended with the server's `error` event (the partial answer is kept) */
  | { kind: "error"; data: ErrorData }
  /** the client could not read the stream to its end (HTTP error, or retries ran out) */
  | { kind: "failed"; error: ApiError }
  /** the stream can no longer be read (204 past its end, 404 expired): the answer is
   *  in the conversation */
  | { kind: "gone"; status: number }
  /** abort() was called */
  | { kind: "aborted" };

/** A POST that starts an answer (/api/chat, /regenerate). */
export interface PostTarget {
  url: string;
  body: unknown;
  idempotencyKey?: string;
}

/** What to read: a POST that starts an answer, or an existing stream from an event on. */
export type StreamTarget = PostTarget | { streamId: string; lastEventId?: number };

/** What a reader of a stream is told as it reads. */
export interface StreamHandlers {
  onEvent: (event: StreamEvent) => void;
  /** the response headers arrived (stream and conversation ids when the server sent them) */
  onOpen?: (info: { streamId: string | null; conversationId: string | null }) => void;
  /** the connection was lost; the next attempt comes after `delayMs` */
  onReconnecting?: (info: { attempt: number; delayMs: number; error: ApiError }) => void;
  /** a reconnect attempt got the stream back */
  onReconnected?: () => void;
}

export interface StreamOptions extends StreamHandlers {
  fetch?: typeof fetch;
  /** resolves after `ms`, or earlier when `signal` aborts (or the browser comes back online) */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** failed attempts in a row before giving up (default 6) */
  maxRetries?: number;
  /** first backoff delay; the server's `retry:` field wins when sent (default 1000) */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** no byte (not even a `: ping`, sent every 15 s) for this long means a dead connection */
  stallTimeoutMs?: number;
  random?: () => number;
}

const RETRYABLE_STATUS = new Set([502, 503, 504]);
const TERMINAL = new Set(["done", "error"]);
/** the events handed on besides `start` and the terminal ones (DESIGN.md, "Contract") */
const CONTENT = new Set(["delta", "reasoning", "tool_call"]);

/** Waits `ms`, ends early on abort or when the browser reports it is back online. */
export function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", finish);
      globalThis.removeEventListener?.("online", finish);
      resolve();
    };
    const timer = setTimeout(finish, ms);
    signal.addEventListener("abort", finish, { once: true });
    globalThis.addEventListener?.("online", finish, { once: true });
  });
}

type ReadEnd = { outcome: StreamOutcome } | { error: ApiError };

/** One answer's stream as its reader sees it: StreamClient, or a fake in the tests. */
export interface Stream {
  /** known from the X-Stream-Id header or the `start` event */
  readonly streamId: string | null;
  /** the id of the last event handled; a resume asks for what comes after it */
  readonly lastEventId: number;
  /** Read the stream to its end; resolves with how it ended, never rejects. */
  run(): Promise<StreamOutcome>;
  /** Stop reading (the generation goes on on the server; cancel is a separate call). */
  abort(): void;
}

export class StreamClient implements Stream {
  /** known from the X-Stream-Id header or the `start` event */
  streamId: string | null = null;
  conversationId: string | null = null;
  /** the id of the last event handled; a resume asks for what comes after it */
  lastEventId: number;

  private readonly opts: Required<Omit<StreamOptions, "onOpen" | "onReconnecting" | "onReconnected">>
    & StreamOptions;
  private aborted = false;
  private readonly abortAll = new AbortController();
  private serverRetryMs: number | null = null;

  constructor(private readonly target: StreamTarget, options: StreamOptions) {
    this.opts = {
      fetch: (...args) => globalThis.fetch(...args),
      sleep: defaultSleep,
      maxRetries: 6,
      baseDelayMs: 1000,
      maxDelayMs: 10_000,
      stallTimeoutMs: 45_000,
      random: Math.random,
      ...options,
    };
    if ("streamId" in target) {
      this.streamId = target.streamId;
      this.lastEventId = target.lastEventId ?? 0;
    } else {
      this.lastEventId = 0;
    }
  }

  /** Stop reading (the generation goes on on the server; cancel is a separate call). */
  abort(): void {
    this.aborted = true;
    this.abortAll.abort();
  }

  /** Read the stream to its end; resolves with how it ended, never rejects. */
  async run(): Promise<StreamOutcome> {
    let failures = 0;
    for (;;) {
      if (this.aborted) return { kind: "aborted" };
      const progressBefore = this.lastEventId;
      const end = await this.attempt(failures > 0);
      if (this.aborted) return { kind: "aborted" };
      if ("outcome" in end) return end.outcome;
      if (this.lastEventId > progressBefore) failures = 0;
      if (this.streamId === null && !this.canRepost()) {
        return { kind: "failed", error: end.error };
      }
      failures += 1;
      if (failures > this.opts.maxRetries) return { kind: "failed", error: end.error };
      const delayMs = this.backoff(failures);
      this.opts.onReconnecting?.({ attempt: failures, delayMs, error: end.error });
      await this.opts.sleep(delayMs, this.abortAll.signal);
    }
  }

  /** Re-sending the POST is safe only with an Idempotency-Key (else: a second answer). */
  private canRepost(): boolean {
    return "url" in this.target && !!this.target.idempotencyKey;
  }

  private backoff(failures: number): number {
    const base = this.serverRetryMs ?? this.opts.baseDelayMs;
    const delay = Math.min(this.opts.maxDelayMs, base * 2 ** (failures - 1));
    return Math.round(delay * (0.8 + 0.4 * this.opts.random()));
  }

  private request(): [string, RequestInit] {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (this.streamId !== null) {
      // Resume (or replay from the start when nothing was handled yet).
      if (this.lastEventId > 0) headers["Last-Event-ID"] = String(this.lastEventId);
      return [`/api/streams/${encodeURIComponent(this.streamId)}`, { method: "GET", headers, cache: "no-store" }];
    }
    const target = this.target as PostTarget;
    headers["Content-Type"] = "application/json";
    if (target.idempotencyKey) headers["Idempotency-Key"] = target.idempotencyKey;
    return [target.url, { method: "POST", headers, body: JSON.stringify(target.body) }];
  }

  private async attempt(isRetry: boolean): Promise<ReadEnd> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    this.abortAll.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const resuming = this.streamId !== null;
      const [url, init] = this.request();
      let response: Response;
      try {
        response = await this.opts.fetch(url, { ...init, signal: controller.signal });
      } catch (error) {
        return { error: networkError(error) };
      }
      if (resuming && (response.status === 204 || response.status === 404)) {
        return { outcome: { kind: "gone", status: response.status } };
      }
      if (!response.ok || response.body === null) {
        // A 401 (key revoked, cookie expired) ends this read like any other HTTP error;
        // the page is told, shows the sign-in form, and Retry resumes from here after it.
        const error = reported(await errorFromResponse(response));
        if (RETRYABLE_STATUS.has(response.status)) return { error };
        return { outcome: { kind: "failed", error } };
      }
      const streamId = response.headers.get("X-Stream-Id");
      if (streamId && this.streamId === null) this.streamId = streamId;
      const conversationId = response.headers.get("X-Conversation-Id");
      if (conversationId && this.conversationId === null) this.conversationId = conversationId;
      this.opts.onOpen?.({ streamId: this.streamId, conversationId: this.conversationId });
      if (isRetry) this.opts.onReconnected?.();
      return await this.read(response.body, controller);
    } finally {
      this.abortAll.signal.removeEventListener("abort", onAbort);
    }
  }

  private async read(body: ReadableStream<Uint8Array>, controller: AbortController): Promise<ReadEnd> {
    const reader = body.getReader();
    const decoder = new SseDecoder();
    let stalled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Aborting the request ends the body too; cancelling the reader makes sure of it.
    const cancel = () => void reader.cancel().catch(() => undefined);
    controller.signal.addEventListener("abort", cancel, { once: true });
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        controller.abort();
      }, this.opts.stallTimeoutMs);
    };
    try {
      arm();
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (stalled) return { error: new ApiError(0, "stalled", "The connection went silent.") };
          return { error: networkError(error) };
        }
        if (stalled) return { error: new ApiError(0, "stalled", "The connection went silent.") };
        if (chunk.done) {
          const outcome = this.handle(decoder.end());
          if (outcome) return { outcome };
          return { error: new ApiError(0, "disconnected", "The stream ended before its last event.") };
        }
        arm();
        const outcome = this.handle(decoder.feed(chunk.value));
        if (decoder.parser.retry !== null) this.serverRetryMs = decoder.parser.retry;
        if (outcome) {
          void reader.cancel().catch(() => undefined);
          return { outcome };
        }
      }
    } finally {
      clearTimeout(timer);
      controller.signal.removeEventListener("abort", cancel);
    }
  }

  /** Hand new events on; returns the outcome when one of them ends the stream. */
  private handle(events: SseEvent[]): StreamOutcome | null {
    for (const raw of events) {
      const id = Number(raw.lastEventId);
      if (raw.lastEventId !== "" && Number.isFinite(id)) {
        if (id <= this.lastEventId) continue; // already handled: a replay overlap
        this.lastEventId = id;
      }
      let data: unknown;
      try {
        data = JSON.parse(raw.data);
      } catch {
        continue; // not ours
      }
      const event = { type: raw.type, id, data } as StreamEvent;
      if (event.type === "start") {
        this.streamId ??= event.data.stream_id;
        this.conversationId ??= event.data.conversation_id;
      } else if (!CONTENT.has(event.type) && !TERMINAL.has(event.type)) {
        continue; // an event type this page does not know
      }
      this.opts.onEvent(event);
      if (event.type === "done") return { kind: "done", data: event.data };
      if (event.type === "error") return { kind: "error", data: event.data };
    }
    return null;
  }
}
