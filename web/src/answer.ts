/**
 * The answer controller: the whole life of the answer that streams on the page (one at
 * a time). It starts with a message (POST /api/chat), with Regenerate, or with a replay
 * when the page opens on an answer still streaming; its deltas are drawn as they come;
 * Stop cancels it on the server; a dropped connection is resumed by the stream client,
 * and once that gives up, Retry reads on from the last event shown; it ends with
 * `done`, with `error` (the partial text stays), or with a stream that is gone (the
 * stored answer is shown). Reasoning shows in the Thinking block above the text, timed
 * on this page from its first to its last piece; tool calls as cards below it (issue 13).
 *
 * It draws through an AnswerView, shows Stop through the composer's StopControl, and
 * tells the page what the page owns (the conversation, the other answers, the
 * announcer) through AnswerPage. Streams come from `connect`: StreamClient, or a fake
 * in the tests.
 */

import { ApiError, type StoredMessage, type StreamEvent, api } from "./api";
import { describeError, describeStreamError } from "./format";
import { type PostTarget, type Stream, StreamClient, type StreamHandlers, type StreamOutcome, type StreamTarget } from "./stream";
import { uuid } from "./ui/dom";
import { type AnswerVersion, type AnswerView, versionFromStored } from "./ui/messages";
import { assembledCalls } from "./ui/toolcalls";

/** What the message box does for a streaming answer (ui/composer.ts implements it). */
export interface StopControl {
  /** an answer streams and `stop` stops it, or (null) none does; `takeFocus`: focus Stop */
  setBusy(stop: (() => void) | null, takeFocus?: boolean): void;
  /** Stop was pressed: the answer ends when the server confirms */
  setStopping(): void;
}

/** What the controller asks of the page around the answer (conversation.ts). */
export interface AnswerPage {
  /** the conversation on screen; null for a new chat */
  conversationId(): string | null;
  /** the model (undefined: the server's default) and provider options of the next answer */
  settings(): { model: string | undefined; options: Record<string, unknown> };
  /** the server started the answer in this conversation; `title` is the start event's
   *  (undefined from a server that does not send one) */
  started(conversationId: string, title: string | undefined): void;
  /** an answer streams (true) or has ended (false): the other answers lock meanwhile */
  busy(busy: boolean): void;
  /** the answer grew or ended: keep it in view */
  grew(): void;
  /** Retry after an `error` event: regenerate the last answer */
  regenerate(): void;
  /** the server refused the message `text` as too long for the model (no answer was
   *  made, nothing stored): give it back to be shortened; `message` is the server's */
  tooLong(view: AnswerView, text: string, message: string): void;
  announce(text: string): void;
}

/** The server side of an answer; the real API unless a test gives its own. */
export interface AnswerServices {
  connect(target: StreamTarget, handlers: StreamHandlers): Stream;
  /** POST /api/streams/{id}/cancel */
  cancel(streamId: string): Promise<unknown>;
  /** the answer as stored, once its stream is gone */
  stored(conversationId: string, messageId: string): Promise<StoredMessage | undefined>;
  /** a new Idempotency-Key */
  newKey(): string;
  /** the clock that times the thinking, in ms (default: performance.now) */
  now?(): number;
}

const SERVER: AnswerServices = {
  connect: (target, handlers) => new StreamClient(target, handlers),
  cancel: (streamId) => api.cancel(streamId),
  stored: async (conversationId, messageId) =>
    (await api.conversation(conversationId)).messages.find((m) => m.id === messageId),
  newKey: uuid,
};

/** One read of one answer's stream. */
class Reading {
  /** set right after construction: the stream's handlers need this reading */
  stream!: Stream;
  cancelRequested = false;
  /** the cancel request failed: the reader was stopped here, the answer kept as it is */
  stoppedLocally = false;

  /** `timed`: events arrive as the model makes them, so their times tell how long it
   *  thought; not in a replay from the start, where the past comes at once */
  constructor(readonly view: AnswerView, readonly timed: boolean, readonly text: string | null) {}
}

type RetryStart = (error: ApiError) => void;

/** A 400 before any answer: the message does not fit the model's context window, so
 *  sending it again cannot succeed; only a shorter message can. */
const TOO_LONG = "context_length_exceeded";

export class AnswerController {
  private reading: Reading | null = null;

  constructor(
    private readonly page: AnswerPage,
    private readonly composer: StopControl,
    private readonly server: AnswerServices = SERVER,
  ) {}

  /** The answer streaming now, if any. */
  get active(): AnswerView | null {
    return this.reading?.view ?? null;
  }

  /** Answer the user's `text` in `view`, a new and empty answer. */
  send(view: AnswerView, text: string): void {
    const { model, options } = this.page.settings();
    const body = {
      messages: [{ role: "user", content: text }],
      model,
      conversation_id: this.page.conversationId() ?? undefined,
      options,
    };
    this.post(view, { url: "/api/chat", body, idempotencyKey: this.server.newKey() }, false, text);
  }

  /** A new version of `view`, the last answer (the earlier ones are kept). */
  regenerate(view: AnswerView): void {
    const conversationId = this.page.conversationId();
    if (this.reading || !conversationId) return;
    const { model, options } = this.page.settings();
    // Regenerate takes no Idempotency-Key, so a failed POST is not re-sent by itself.
    const url = `/api/conversations/${encodeURIComponent(conversationId)}/regenerate`;
    this.post(view, { url, body: { model, options } }, false);
  }

  /** An answer still streaming when the page opened: replay its stream from the start
   *  (the server keeps the log, so the text is exact) in place of the stored part. */
  replay(view: AnswerView): void {
    const stored = view.current;
    if (!stored.streamId) return;
    view.beginStream({ ...stored, content: "", reasoning: "", thought: null, toolCalls: [] }, true);
    void this.read(view, { streamId: stored.streamId, lastEventId: 0 }, null, false);
  }

  /** Stop the answer: the server cancels it, and its stream ends with `done`, cancelled. */
  stop(): void {
    const reading = this.reading;
    if (!reading || reading.cancelRequested) return;
    reading.cancelRequested = true;
    this.composer.setStopping();
    if (reading.stream.streamId) void this.sendCancel(reading);
    // else: sent as soon as the stream id arrives (onOpen / start)
  }

  /** Stop reading (the page moves on); the answer goes on on the server. */
  leave(): void {
    if (!this.reading) return;
    this.reading.stream.abort();
    this.reading = null;
    this.composer.setBusy(null);
  }

  /** Start an answer with a POST; on failure before it started, Retry posts again. */
  private post(view: AnswerView, target: PostTarget, replace: boolean, text: string | null = null): void {
    view.beginStream(this.newVersion(), replace);
    void this.read(view, target, (error) => {
      // A network error may have reached the server: the same key gets the same
      // answer. After an HTTP error nothing started: a new key is a new request.
      const key = target.idempotencyKey === undefined ? undefined
        : error.status === 0 ? target.idempotencyKey : this.server.newKey();
      this.post(view, { ...target, idempotencyKey: key }, true, text);
    }, true, text);
  }

  private newVersion(): AnswerVersion {
    return {
      id: null, status: "streaming", content: "", model: this.page.settings().model ?? null,
      usage: null, timings: null, error: null, streamId: null, reasoning: "", thought: null, toolCalls: [],
    };
  }

  private async read(view: AnswerView, target: StreamTarget, retryStart: RetryStart | null, timed = true,
                     text: string | null = null): Promise<void> {
    const reading = new Reading(view, timed, text);
    reading.stream = this.server.connect(target, this.handlers(reading));
    this.reading = reading;
    // The button that started this (Send, Retry, Regenerate) is gone: keep the keyboard
    // focus somewhere useful, on Stop.
    const focus = document.activeElement;
    const focusLost = focus === null || focus === document.body || view.element.contains(focus);
    this.composer.setBusy(() => this.stop(), focusLost);
    this.page.busy(true);
    view.element.classList.remove("disconnected");
    const outcome = await reading.stream.run();
    if (this.reading === reading) {
      this.reading = null;
      this.composer.setBusy(null);
    }
    if (!view.element.isConnected) return; // the page moved on
    this.end(outcome, reading, retryStart);
    this.page.busy(false);
    this.page.grew();
  }

  private handlers(reading: Reading): StreamHandlers {
    const { view } = reading;
    return {
      onOpen: ({ streamId }) => {
        if (this.reading !== reading) return;
        if (streamId) view.current.streamId = streamId;
        if (reading.cancelRequested && streamId) void this.sendCancel(reading);
      },
      onEvent: (event) => this.apply(event, reading),
      onReconnecting: ({ attempt }) => {
        view.setConnection(attempt === 1 ? "Reconnecting…" : `Reconnecting… (attempt ${attempt})`);
        if (attempt === 1) this.page.announce("Connection lost, reconnecting");
      },
      onReconnected: () => {
        view.setConnection(null);
        this.page.announce("Reconnected");
      },
    };
  }

  private apply(event: StreamEvent, reading: Reading): void {
    const { view } = reading;
    const version = view.current;
    switch (event.type) {
      case "start":
        version.id = event.data.message_id;
        version.streamId = event.data.stream_id;
        version.model = event.data.model;
        if (this.reading === reading) {
          const title = typeof event.data.title === "string" ? event.data.title : undefined;
          this.page.started(event.data.conversation_id, title);
          if (reading.cancelRequested) void this.sendCancel(reading);
        }
        break;
      case "delta":
        view.append(event.data.text);
        this.page.grew();
        break;
      case "reasoning":
        if (reading.timed) {
          const now = this.server.now?.() ?? performance.now();
          version.thought = { first: version.thought?.first ?? now, last: now };
        }
        view.appendReasoning(event.data.text);
        this.page.grew();
        break;
      case "tool_call":
        view.appendToolCall(event.data);
        this.page.grew();
        break;
      case "done":
        version.status = event.data.finish_reason === "cancelled" ? "cancelled" : "complete";
        version.usage = event.data.usage ?? null;
        version.timings = event.data.timings ?? null;
        if (event.data.tool_calls?.length) version.toolCalls = assembledCalls(event.data.tool_calls, version.toolCalls);
        break;
      case "error":
        // A shutdown is stored as `interrupted`: show the same as after a reload.
        version.status = event.data.code === "shutdown" ? "interrupted" : "error";
        version.error = { code: event.data.code, message: event.data.message };
        break;
      default:
        break; // an event this page does not know (DESIGN.md: a reader skips it)
    }
  }

  private end(outcome: StreamOutcome, reading: Reading, retryStart: RetryStart | null): void {
    const { view } = reading;
    switch (outcome.kind) {
      case "done":
        view.endStream();
        this.page.announce(view.current.status === "cancelled" ? "Answer stopped" : "Answer complete");
        break;
      case "error":
        view.endStream();
        view.showError({
          message: describeStreamError(outcome.data.code, outcome.data.message),
          retry: () => this.page.regenerate(),
        });
        this.page.announce("The answer failed");
        break;
      case "failed":
        this.failed(outcome.error, reading, retryStart);
        break;
      case "gone":
        void this.reconcile(view);
        break;
      case "aborted":
        if (reading.stoppedLocally) {
          view.current.status = "cancelled";
          view.endStream();
          view.showError({ message: "Could not reach the server to stop the answer: it stopped here, " +
            "but may have gone on there. Reload to see it." });
        }
        break;
    }
  }

  private failed(error: ApiError, reading: Reading, retryStart: RetryStart | null): void {
    const { stream, view } = reading;
    const message = describeError(error);
    if (stream.streamId === null && error.code === TOO_LONG) {
      // No Retry: the same message would be refused again. The server's message says
      // what to do (shorten it); a typed message goes back into the message box.
      view.current.status = "error";
      view.current.error = { code: error.code, message: error.message };
      view.endStream();
      if (reading.text !== null) this.page.tooLong(view, reading.text, error.message);
      else view.showError({ message: error.message });
      this.page.announce("Error: " + error.message);
      return;
    }
    if (stream.streamId === null) {
      // Nothing started on the server.
      view.current.status = "error";
      view.current.error = { code: error.code, message };
      view.endStream();
      view.showError({ message, retry: retryStart ? () => retryStart(error) : undefined, retryAfter: error.retryAfter });
    } else {
      // The answer goes on on the server; Retry reads on from the last event shown.
      view.element.classList.add("disconnected");
      view.setConnection("Disconnected");
      const streamId = stream.streamId;
      const lastEventId = stream.lastEventId;
      view.showError({
        message: error.status === 0 ? `Lost the connection to the answer. ${message}` : message,
        retryAfter: error.retryAfter,
        retry: () => {
          view.clearError();
          void this.read(view, { streamId, lastEventId }, null, reading.timed);
        },
      });
    }
    view.focusRetry();
    this.page.announce("Error: " + message);
  }

  /** The stream is gone (expired, or read past its end): show what the server stored. */
  private async reconcile(view: AnswerView): Promise<void> {
    const id = view.current.id;
    const conversationId = this.page.conversationId();
    let stored: StoredMessage | undefined;
    if (id && conversationId) {
      try {
        stored = await this.server.stored(conversationId, id);
      } catch {
        stored = undefined;
      }
    }
    if (!view.element.isConnected) return;
    view.endStream();
    if (stored) {
      // What the page timed of the thinking is not stored: keep it.
      view.versions[view.index] = { ...versionFromStored(stored), thought: view.current.thought };
      view.show(view.index);
    } else {
      view.current.status = "interrupted";
      view.refresh();
    }
  }

  private async sendCancel(reading: Reading): Promise<void> {
    const streamId = reading.stream.streamId;
    if (!streamId || reading.stoppedLocally) return;
    try {
      await this.server.cancel(streamId);
      // The stream now ends with `done`, finish_reason "cancelled".
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // already over
      reading.stoppedLocally = true;
      reading.stream.abort();
    }
  }
}
