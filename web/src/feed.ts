/**
 * The conversation feed: one EventSource per page on GET /api/conversations/events,
 * telling this page what changed in any of the owner's conversations, made here or in
 * another tab (issue 14, point 6). An EventSource, unlike the answer streams (stream.ts):
 * nothing here needs the HTTP status, and the browser reconnects by itself with
 * Last-Event-ID, so the server sends only what was missed (or `reset`).
 *
 * Every change may come twice (this page's own, a resumed feed): the handlers apply
 * them so that a repeat changes nothing.
 */

import type { ConversationChange } from "./api";

export const FEED_URL = "/api/conversations/events";

export interface FeedHandlers {
  change(change: ConversationChange): void;
  /** what was missed is unknown: reload the list and the conversation on screen */
  reset(): void;
}

/** What the feed uses of an EventSource (a fake in the tests). */
export interface FeedSource {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
}

export interface FeedOptions {
  open?: (url: string) => FeedSource;
  /** the first wait before a feed the server closed is opened again, in ms */
  retryMs?: number;
  maxRetryMs?: number;
}

/** EventSource.CLOSED: the browser gave up (an HTTP error status), it will not reconnect. */
const CLOSED = 2;

export class ConversationFeed {
  private source: FeedSource | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private wait: number;
  private readonly open: (url: string) => FeedSource;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;

  constructor(private readonly handlers: FeedHandlers, options: FeedOptions = {}) {
    this.open = options.open ?? ((url) => new EventSource(url));
    this.retryMs = options.retryMs ?? 2000;
    this.maxRetryMs = options.maxRetryMs ?? 60_000;
    this.wait = this.retryMs;
  }

  /** Open the feed (signed in); nothing if it is open. */
  start(): void {
    if (this.source === null && this.timer === null) this.connect(false);
  }

  /** Close it (signed out: the next key may be another owner's). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
    this.wait = this.retryMs;
  }

  /** `again`: a new EventSource after the last one was closed, so it starts from now and
   *  what happened in between is unknown: a reset once it opens. */
  private connect(again: boolean): void {
    const source = this.open(FEED_URL);
    this.source = source;
    let resetDue = again;
    source.addEventListener("open", () => {
      this.wait = this.retryMs;
      if (resetDue) this.handlers.reset();
      resetDue = false;
    });
    source.addEventListener("conversation", (event) => {
      const change = parseChange(event.data);
      if (change) this.handlers.change(change);
    });
    source.addEventListener("reset", () => this.handlers.reset());
    source.addEventListener("error", () => {
      // A dropped connection is reconnected by the browser (readyState CONNECTING);
      // an error status closes it for good: open a new one, later and later.
      if (source.readyState !== CLOSED || this.source !== source) return;
      source.close();
      this.source = null;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.connect(true);
      }, this.wait);
      this.wait = Math.min(this.wait * 2, this.maxRetryMs);
    });
  }
}

function parseChange(data: unknown): ConversationChange | null {
  try {
    const change = JSON.parse(String(data)) as ConversationChange;
    return change && typeof change.conversation_id === "string" && typeof change.change === "string" ? change : null;
  } catch {
    return null; // not ours: skipped, as a reader skips what it does not know
  }
}
