/**
 * The chat page: routes (/ and /c/{id}), the conversation on screen, the answer that
 * streams, the sidebar and the composer. Streams are read by StreamClient and drawn
 * by IncrementalRenderer (inside AnswerView); this module only wires them together.
 *
 * When the server needs an API key, nothing is loaded before GET /api/session says this
 * browser is signed in; any 401 later brings the sign-in form back over the page as it
 * is (issue 8, "Keys and isolation").
 */

import { ApiError, type Conversation, type Models, type StoredMessage, Unauthorized, api, onUnauthorized } from "./api";
import { describeError, describeStreamError } from "./format";
import { type StreamOutcome, StreamClient, type StreamTarget } from "./stream";
import { errorBanner } from "./ui/banner";
import { Composer } from "./ui/composer";
import { copyText, h, uuid } from "./ui/dom";
import { type AnswerVersion, AnswerView, userMessageView, versionFromStored } from "./ui/messages";
import { Sidebar } from "./ui/sidebar";
import { SESSION_ENDED, SignInForm } from "./ui/signin";

const MODEL_KEY = "tokenrelay.model";
/** Extra provider options sent with every answer, as JSON (developers, tests, benchmarks). */
const OPTIONS_KEY = "tokenrelay.options";
const TITLE_LENGTH = 80;
const SUGGESTIONS = [
  "Explain Server-Sent Events in one paragraph",
  "Write a Python function that merges two sorted lists",
  "Compare TCP and UDP in a table",
  "Give me three tips for writing clear commit messages",
];

interface Active {
  client: StreamClient;
  view: AnswerView;
  cancelRequested: boolean;
  /** the cancel request failed: the reader was stopped here, the answer kept as it is */
  stoppedLocally: boolean;
}

interface CurrentConversation {
  id: string;
  title: string;
}

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}

function readOptions(): Record<string, unknown> {
  try {
    const raw = localStorage.getItem(OPTIONS_KEY);
    const parsed: unknown = raw ? JSON.parse(raw) : {};
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function conversationPath(id: string): string {
  return `/c/${encodeURIComponent(id)}`;
}

export class App {
  private readonly app = byId<HTMLElement>("app");
  private readonly scroller = byId<HTMLElement>("scroller");
  private readonly messages = byId<HTMLElement>("messages");
  private readonly emptyState = byId<HTMLElement>("empty-state");
  private readonly title = byId<HTMLElement>("chat-title");
  private readonly modelSelect = byId<HTMLSelectElement>("model-select");
  private readonly bannerSlot = byId<HTMLElement>("banner-slot");
  private readonly announcer = byId<HTMLElement>("announcer");
  private readonly menuToggle = byId<HTMLButtonElement>("menu-toggle");
  private readonly scrollDown = byId<HTMLButtonElement>("scroll-down");
  private readonly account = byId<HTMLElement>("account");
  private readonly composer: Composer;
  private readonly sidebar: Sidebar;
  private readonly signInForm: SignInForm;

  private conversation: CurrentConversation | null = null;
  private answers: AnswerView[] = [];
  private active: Active | null = null;
  /** increases with each navigation, so a late answer for an old page is dropped */
  private generation = 0;
  private stickToBottom = true;
  private scrollFrame: number | null = null;
  /** models, history and the route were loaded once (signed in, or no key needed) */
  private loaded = false;
  /** the conversation of the URL could not load for a 401: open it after sign-in */
  private routeAfterSignIn = false;

  constructor() {
    this.composer = new Composer({
      form: byId("composer-form"),
      input: byId("composer-input"),
      send: byId("send"),
      stop: byId("stop"),
      onSend: (text) => this.send(text),
      onStop: () => this.stop(),
    });
    this.sidebar = new Sidebar(byId("conversation-list"), byId("conversation-empty"), byId("load-more"), {
      open: (id) => {
        this.closeSidebar();
        void this.openConversation(id, true);
      },
      deleted: (id) => {
        if (this.conversation?.id === id) this.newChat(true);
        this.announce("Conversation deleted");
      },
      renamed: (id, title) => {
        if (this.conversation?.id === id) this.setTitle(title);
        this.announce("Conversation renamed");
      },
      error: (message, retry) => this.showBanner(message, retry),
    });
    this.signInForm = new SignInForm({
      dialog: byId("signin"),
      form: byId("signin-form"),
      reason: byId("signin-reason"),
      input: byId("signin-key"),
      error: byId("signin-error"),
      submit: byId("signin-submit"),
      signIn: (key) => api.signIn(key),
      signedIn: () => this.signedIn(),
    });
  }

  start(): void {
    this.wire();
    this.renderSuggestions();
    onUnauthorized(() => this.sessionEnded());
    void this.checkSession();
  }

  // --- session ---------------------------------------------------------------------

  private async checkSession(): Promise<void> {
    let keysRequired: boolean;
    let signedIn: boolean;
    try {
      ({ keys_required: keysRequired, signed_in: signedIn } = await api.session());
    } catch (error) {
      const message = error instanceof ApiError ? describeError(error) : String(error);
      this.showBanner(`Could not reach the server. ${message}`, () => void this.checkSession());
      return;
    }
    this.account.hidden = !keysRequired;
    if (keysRequired && !signedIn) {
      this.signInForm.show();
    } else {
      this.load();
    }
  }

  private load(): void {
    this.loaded = true;
    void this.loadModels();
    void this.sidebar.load();
    void this.route(location.pathname);
  }

  /** A 401 from any request: the key was revoked or the cookie expired. The form goes
   *  over the page as it is, so the message box and the answers on screen stay. */
  private sessionEnded(): void {
    this.account.hidden = false;
    this.clearBanner();
    this.signInForm.show(this.loaded ? SESSION_ENDED : undefined);
  }

  private signedIn(): void {
    this.account.hidden = false;
    this.announce("Signed in");
    if (!this.loaded) {
      this.load();
      return;
    }
    // Signed in again, maybe with another key (another owner): fresh history.
    void this.loadModels();
    void this.sidebar.load();
    if (this.routeAfterSignIn) {
      this.routeAfterSignIn = false;
      void this.route(location.pathname);
    }
    this.composer.focus();
  }

  private async signOut(): Promise<void> {
    try {
      await api.signOut();
    } catch (error) {
      const message = error instanceof ApiError ? describeError(error) : String(error);
      this.showBanner(`Could not sign out. ${message}`, () => void this.signOut());
      return;
    }
    // Nothing of this key's stays on screen for whoever signs in next.
    this.closeSidebar();
    this.newChat(true);
    this.sidebar.clear();
    this.composer.clear();
    this.signInForm.show();
  }

  // --- wiring ----------------------------------------------------------------------

  private wire(): void {
    window.addEventListener("popstate", () => void this.route(location.pathname));
    byId("new-chat").addEventListener("click", () => {
      this.closeSidebar();
      this.newChat(true);
    });
    byId("brand").addEventListener("click", (event) => {
      event.preventDefault();
      this.newChat(true);
    });
    this.menuToggle.addEventListener("click", () => this.openSidebar());
    byId("sidebar-close").addEventListener("click", () => this.closeSidebar());
    byId("backdrop").addEventListener("click", () => this.closeSidebar());
    byId("sign-out").addEventListener("click", () => void this.signOut());
    this.modelSelect.addEventListener("change", () => {
      try {
        localStorage.setItem(MODEL_KEY, this.modelSelect.value);
      } catch {
        // storage may be off; the choice still holds for this page
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.defaultPrevented) return;
      if (this.app.classList.contains("sidebar-open")) {
        this.closeSidebar();
        this.menuToggle.focus();
      } else if (this.active) {
        event.preventDefault();
        this.stop();
      }
    });
    // Copy buttons of code blocks: one delegated listener, no inline handler.
    this.messages.addEventListener("click", (event) => {
      const button = (event.target as Element).closest<HTMLButtonElement>("[data-action=copy-code]");
      if (!button) return;
      const code = button.closest(".code-block")?.querySelector("code");
      if (code) void this.copy(code.textContent ?? "", button);
    });
    this.scroller.addEventListener("scroll", () => {
      const distance = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      this.stickToBottom = distance < 80;
      this.scrollDown.hidden = this.stickToBottom;
    }, { passive: true });
    this.scrollDown.addEventListener("click", () => {
      this.stickToBottom = true;
      this.scrollToBottom(true);
      this.composer.focus();
    });
  }

  private renderSuggestions(): void {
    const list = byId<HTMLUListElement>("suggestions");
    for (const text of SUGGESTIONS) {
      const button = h("button", { class: "suggestion", testid: "suggestion", text, attrs: { type: "button" } });
      button.addEventListener("click", () => this.send(text));
      list.append(h("li", {}, button));
    }
  }

  private async loadModels(): Promise<void> {
    let models: Models;
    try {
      models = await api.models();
    } catch (error) {
      if (error instanceof Unauthorized) return; // loaded again after sign-in
      const message = error instanceof ApiError ? describeError(error) : String(error);
      this.showBanner(`Could not load the list of models. ${message}`, () => void this.loadModels());
      return;
    }
    let stored: string | null = null;
    try {
      stored = localStorage.getItem(MODEL_KEY);
    } catch {
      stored = null;
    }
    const current = this.modelSelect.value;
    this.modelSelect.replaceChildren(
      ...models.models.map((name) =>
        h("option", { text: name, attrs: { value: name, title: name === models.default ? "the server's default" : null } })),
    );
    const pick = [current, stored, models.default].find((m) => m && models.models.includes(m));
    if (pick) this.modelSelect.value = pick;
  }

  // --- navigation ------------------------------------------------------------------

  private async route(path: string): Promise<void> {
    const match = /^\/c\/([^/]+)\/?$/.exec(path);
    if (match) {
      await this.openConversation(decodeURIComponent(match[1]), false);
    } else {
      this.newChat(false);
    }
  }

  /** Leave the conversation on screen: its answer keeps streaming on the server. */
  private leave(): number {
    if (this.active) {
      this.active.client.abort();
      this.active = null;
      this.composer.setStreaming(false);
    }
    this.clearBanner();
    this.answers = [];
    this.messages.replaceChildren();
    this.messages.setAttribute("aria-busy", "false");
    this.generation += 1;
    return this.generation;
  }

  newChat(push: boolean): void {
    this.leave();
    this.conversation = null;
    if (push && location.pathname !== "/") history.pushState(null, "", "/");
    this.setTitle(null);
    this.sidebar.setActive(null);
    this.emptyState.hidden = false;
    this.composer.focus();
  }

  async openConversation(id: string, push: boolean): Promise<void> {
    const generation = this.leave();
    this.conversation = { id, title: this.sidebar.title(id) ?? "" };
    if (push && location.pathname !== conversationPath(id)) history.pushState(null, "", conversationPath(id));
    this.sidebar.setActive(id);
    this.setTitle(this.conversation.title || null);
    this.emptyState.hidden = true;
    this.messages.setAttribute("aria-busy", "true");
    let conversation: Conversation;
    try {
      conversation = await api.conversation(id);
    } catch (error) {
      if (generation !== this.generation) return;
      this.messages.setAttribute("aria-busy", "false");
      if (error instanceof Unauthorized) {
        this.routeAfterSignIn = true;
      } else if (error instanceof ApiError && error.status === 404) {
        this.showBanner("This conversation does not exist (it may have been deleted).", () => this.newChat(true), "New chat");
      } else {
        const message = error instanceof ApiError ? describeError(error) : String(error);
        this.showBanner(`Could not load this conversation. ${message}`, () => void this.openConversation(id, false));
      }
      return;
    }
    if (generation !== this.generation) return;
    this.messages.setAttribute("aria-busy", "false");
    this.showConversation(conversation);
    this.composer.focus();
  }

  private showConversation(conversation: Conversation): void {
    this.conversation = { id: conversation.id, title: conversation.title };
    this.setTitle(conversation.title);
    if (conversation.model && Array.from(this.modelSelect.options).some((o) => o.value === conversation.model)) {
      this.modelSelect.value = conversation.model;
    }
    // Answers are grouped by the user message they answer (`reply_to`): regenerate
    // keeps the earlier ones, shown as versions; the newest is on screen.
    const groups = new Map<string, AnswerView>();
    for (const message of conversation.messages) {
      if (message.role === "user") {
        this.messages.append(userMessageView(message.content));
      } else if (message.role === "assistant") {
        const group = message.reply_to ? groups.get(message.reply_to) : undefined;
        if (group) {
          group.versions.push(versionFromStored(message));
          continue;
        }
        const view = this.answerView([versionFromStored(message)]);
        if (message.reply_to) groups.set(message.reply_to, view);
        this.messages.append(view.element);
        this.answers.push(view);
      }
    }
    for (const view of groups.values()) view.show(view.versions.length - 1);
    this.markLast();
    this.stickToBottom = true;
    this.scrollToBottom(false);
    const streaming = this.answers.find((v) => v.current.status === "streaming" && v.current.streamId);
    if (streaming) this.replay(streaming);
  }

  /** An answer still streaming when the page opened: replay its stream from the start
   *  (the server keeps the log, so the text is exact) in place of the stored part. */
  private replay(view: AnswerView): void {
    const stored = view.current;
    view.beginStream({ ...stored, content: "" }, true);
    const client = this.client({ streamId: stored.streamId!, lastEventId: 0 }, view);
    void this.run(client, view, null);
  }

  // --- answers ---------------------------------------------------------------------

  private answerView(versions: AnswerVersion[]): AnswerView {
    const view: AnswerView = new AnswerView(versions, {
      regenerate: () => this.regenerate(),
      copied: () => void this.copy(view.current.content, null),
    });
    return view;
  }

  private newVersion(): AnswerVersion {
    return {
      id: null, status: "streaming", content: "", model: this.modelSelect.value || null,
      usage: null, timings: null, error: null, streamId: null,
    };
  }

  send(text: string): boolean {
    if (this.active || text.trim() === "") return false;
    this.clearBanner();
    this.finishDetached();
    this.emptyState.hidden = true;
    this.messages.append(userMessageView(text));
    const view = this.answerView([]);
    this.messages.append(view.element);
    this.answers.push(view);
    this.markLast();
    const body = {
      messages: [{ role: "user", content: text }],
      model: this.modelSelect.value || undefined,
      conversation_id: this.conversation?.id,
      options: readOptions(),
    };
    this.post(view, { url: "/api/chat", body, idempotencyKey: uuid() }, false);
    this.stickToBottom = true;
    this.scrollToBottom(false);
    return true;
  }

  regenerate(): void {
    const view = this.answers[this.answers.length - 1];
    if (this.active || !this.conversation || !view) return;
    this.clearBanner();
    const body = { model: this.modelSelect.value || undefined, options: readOptions() };
    // Regenerate takes no Idempotency-Key, so a failed POST is not re-sent by itself.
    const url = `/api/conversations/${encodeURIComponent(this.conversation.id)}/regenerate`;
    this.post(view, { url, body }, false);
  }

  /** Start an answer with a POST; on failure before it started, Retry posts again. */
  private post(view: AnswerView, target: { url: string; body: unknown; idempotencyKey?: string }, replace: boolean): void {
    view.beginStream(this.newVersion(), replace);
    this.markLast();
    const client = this.client(target, view);
    void this.run(client, view, (error) => {
      // A network error may have reached the server: the same key gets the same
      // answer. After an HTTP error nothing started: a new key is a new request.
      const key = target.idempotencyKey === undefined ? undefined
        : error.status === 0 ? target.idempotencyKey : uuid();
      this.post(view, { ...target, idempotencyKey: key }, true);
    });
  }

  private client(target: StreamTarget, view: AnswerView): StreamClient {
    const client: StreamClient = new StreamClient(target, {
      onOpen: ({ streamId, conversationId }) => {
        if (this.active?.client !== client) return;
        if (streamId) view.current.streamId = streamId;
        if (conversationId) this.adopt(conversationId);
        if (this.active.cancelRequested && streamId) void this.sendCancel(this.active);
      },
      onEvent: (event) => {
        const version = view.current;
        switch (event.type) {
          case "start":
            version.id = event.data.message_id;
            version.streamId = event.data.stream_id;
            version.model = event.data.model;
            if (this.active?.client === client) {
              this.adopt(event.data.conversation_id);
              if (this.active.cancelRequested) void this.sendCancel(this.active);
            }
            break;
          case "delta":
            view.append(event.data.text);
            this.followOutput();
            break;
          case "done":
            version.status = event.data.finish_reason === "cancelled" ? "cancelled" : "complete";
            version.usage = event.data.usage ?? null;
            version.timings = event.data.timings ?? null;
            break;
          case "error":
            // A shutdown is stored as `interrupted`: show the same as after a reload.
            version.status = event.data.code === "shutdown" ? "interrupted" : "error";
            version.error = { code: event.data.code, message: event.data.message };
            break;
        }
      },
      onReconnecting: ({ attempt }) => {
        view.setConnection(attempt === 1 ? "Reconnecting…" : `Reconnecting… (attempt ${attempt})`);
        if (attempt === 1) this.announce("Connection lost, reconnecting");
      },
      onReconnected: () => {
        view.setConnection(null);
        this.announce("Reconnected");
      },
    });
    return client;
  }

  private async run(client: StreamClient, view: AnswerView, retryStart: ((error: ApiError) => void) | null): Promise<void> {
    const active: Active = { client, view, cancelRequested: false, stoppedLocally: false };
    this.active = active;
    // The button that started this (Send, Retry, Regenerate) is gone: keep the keyboard
    // focus somewhere useful, on Stop.
    const focus = document.activeElement;
    const focusLost = focus === null || focus === document.body || view.element.contains(focus);
    this.composer.setStreaming(true);
    if (focusLost) byId<HTMLButtonElement>("stop").focus();
    this.setBusy(true);
    view.element.classList.remove("disconnected");
    const outcome = await client.run();
    if (this.active === active) {
      this.active = null;
      this.composer.setStreaming(false);
    }
    if (!view.element.isConnected) return; // the page moved on
    this.setBusy(false);
    this.finish(outcome, client, view, active, retryStart);
    this.markLast();
    this.followOutput();
  }

  private finish(outcome: StreamOutcome, client: StreamClient, view: AnswerView, active: Active,
                 retryStart: ((error: ApiError) => void) | null): void {
    const version = view.current;
    switch (outcome.kind) {
      case "done":
        view.endStream();
        this.announce(version.status === "cancelled" ? "Answer stopped" : "Answer complete");
        break;
      case "error":
        view.endStream();
        view.showError({
          message: describeStreamError(outcome.data.code, outcome.data.message),
          retry: () => this.regenerate(),
        });
        this.announce("The answer failed");
        break;
      case "failed":
        this.failed(outcome.error, client, view, retryStart);
        break;
      case "gone":
        void this.reconcile(view);
        break;
      case "aborted":
        if (active.stoppedLocally) {
          version.status = "cancelled";
          view.endStream();
          view.showError({ message: "Could not reach the server to stop the answer: it stopped here, " +
            "but may have gone on there. Reload to see it." });
        }
        break;
    }
  }

  private failed(error: ApiError, client: StreamClient, view: AnswerView, retryStart: ((error: ApiError) => void) | null): void {
    const message = describeError(error);
    if (client.streamId === null) {
      // Nothing started on the server.
      view.current.status = "error";
      view.current.error = { code: error.code, message };
      view.endStream();
      view.showError({ message, retry: retryStart ? () => retryStart(error) : undefined, retryAfter: error.retryAfter });
    } else {
      // The answer goes on on the server; Retry reads on from the last event shown.
      view.element.classList.add("disconnected");
      view.setConnection("Disconnected");
      const streamId = client.streamId;
      const lastEventId = client.lastEventId;
      view.showError({
        message: error.status === 0 ? `Lost the connection to the answer. ${message}` : message,
        retryAfter: error.retryAfter,
        retry: () => {
          view.clearError();
          void this.run(this.client({ streamId, lastEventId }, view), view, null);
        },
      });
    }
    view.focusRetry();
    this.announce("Error: " + message);
  }

  /** The stream is gone (expired, or read past its end): show what the server stored. */
  private async reconcile(view: AnswerView): Promise<void> {
    const id = view.current.id;
    const conversationId = this.conversation?.id;
    let stored: StoredMessage | undefined;
    if (id && conversationId) {
      try {
        stored = (await api.conversation(conversationId)).messages.find((m) => m.id === id);
      } catch {
        stored = undefined;
      }
    }
    if (!view.element.isConnected) return;
    view.endStream();
    if (stored) {
      view.versions[view.index] = versionFromStored(stored);
      view.show(view.index);
    } else {
      view.current.status = "interrupted";
      view.refresh();
    }
  }

  stop(): void {
    const active = this.active;
    if (!active || active.cancelRequested) return;
    active.cancelRequested = true;
    this.composer.setStopping();
    if (active.client.streamId) void this.sendCancel(active);
    // else: sent as soon as the stream id arrives (onOpen / start)
  }

  private async sendCancel(active: Active): Promise<void> {
    const streamId = active.client.streamId;
    if (!streamId || active.stoppedLocally) return;
    try {
      await api.cancel(streamId);
      // The stream now ends with `done`, finish_reason "cancelled".
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // already over
      active.stoppedLocally = true;
      active.client.abort();
    }
  }

  /** An answer left unfinished by a lost connection is closed before a new one starts. */
  private finishDetached(): void {
    for (const view of this.answers) {
      if (view.streaming && view !== this.active?.view) {
        view.endStream();
        view.clearError();
      }
    }
  }

  // --- conversation bookkeeping ------------------------------------------------------

  /** The answer belongs to this conversation: a new one gets its URL and sidebar entry. */
  private adopt(conversationId: string): void {
    const now = new Date().toISOString();
    if (this.conversation?.id === conversationId) {
      this.sidebar.upsert({ id: conversationId, title: this.conversation.title, model: null, created: now, updated: now });
      return;
    }
    const firstUser = this.messages.querySelector("[data-testid=message-user] .bubble")?.textContent ?? "";
    const title = firstUser.split(/\s+/).filter(Boolean).join(" ").slice(0, TITLE_LENGTH) || "New chat";
    this.conversation = { id: conversationId, title };
    if (location.pathname !== conversationPath(conversationId)) {
      history.pushState(null, "", conversationPath(conversationId));
    }
    this.sidebar.upsert({ id: conversationId, title, model: this.modelSelect.value, created: now, updated: now });
    this.sidebar.setActive(conversationId);
    this.setTitle(title);
  }

  private markLast(): void {
    this.answers.forEach((view, i) => view.setLast(i === this.answers.length - 1));
  }

  private setBusy(busy: boolean): void {
    for (const view of this.answers) view.setBusy(busy);
  }

  private setTitle(title: string | null): void {
    this.title.textContent = title || "New chat";
    document.title = title ? `${title} · tokenrelay` : "tokenrelay";
  }

  // --- page furniture ----------------------------------------------------------------

  private showBanner(message: string, retry?: () => void, retryLabel?: string): void {
    this.bannerSlot.replaceChildren(errorBanner({
      message,
      retry: retry ? () => { this.clearBanner(); retry(); } : undefined,
      retryLabel,
      onDismiss: () => undefined,
    }));
  }

  private clearBanner(): void {
    this.bannerSlot.replaceChildren();
  }

  private announce(text: string): void {
    this.announcer.textContent = "";
    // A change of text is what a screen reader announces; clear first so a repeat counts.
    requestAnimationFrame(() => { this.announcer.textContent = text; });
  }

  private async copy(text: string, button: HTMLButtonElement | null): Promise<void> {
    const ok = await copyText(text);
    this.announce(ok ? "Copied" : "Could not copy");
    if (button) {
      const label = button.textContent;
      button.textContent = ok ? "Copied" : "Failed";
      button.classList.toggle("copied", ok);
      setTimeout(() => {
        button.textContent = label;
        button.classList.remove("copied");
      }, 1500);
    }
  }

  /** Keep the newest text in view while the reader is at the bottom (once per frame). */
  private followOutput(): void {
    if (!this.stickToBottom || this.scrollFrame !== null) return;
    this.scrollFrame = requestAnimationFrame(() => {
      this.scrollFrame = null;
      if (this.stickToBottom) this.scrollToBottom(false);
    });
  }

  private scrollToBottom(smooth: boolean): void {
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smooth ? "smooth" : "auto" });
  }

  private openSidebar(): void {
    this.app.classList.add("sidebar-open");
    this.menuToggle.setAttribute("aria-expanded", "true");
    byId("backdrop").hidden = false;
    (document.querySelector<HTMLElement>(".conv-link[aria-current=page]") ?? byId("new-chat")).focus();
  }

  private closeSidebar(): void {
    if (!this.app.classList.contains("sidebar-open")) return;
    this.app.classList.remove("sidebar-open");
    this.menuToggle.setAttribute("aria-expanded", "false");
    byId("backdrop").hidden = true;
  }
}
