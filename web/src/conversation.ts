/**
 * The conversation on screen: which one it is (its id, and its title in the header and
 * the sidebar), opening one from the server, its messages and answers, a new chat, and
 * sending into it. The answer that streams belongs to the AnswerController; this view
 * gives it the answer to draw into and keeps the page around it in step (AnswerPage).
 */

import { ApiError, type Conversation, type ConversationChange, type ConversationSummary, Unauthorized, api } from "./api";
import { AnswerController, type AnswerPage } from "./answer";
import { describeFailure } from "./format";
import type { Announcer } from "./ui/announcer";
import type { BannerSlot } from "./ui/banner";
import type { Composer } from "./ui/composer";
import { copyText } from "./ui/dom";
import { type AnswerVersion, AnswerView, userMessageView, versionFromStored } from "./ui/messages";
import { orphanToolResult } from "./ui/toolcalls";
import type { ModelPicker } from "./ui/picker";
import type { Scroller } from "./ui/scroller";
import type { Sidebar } from "./ui/sidebar";

export interface ConversationParts {
  messages: HTMLElement;
  emptyState: HTMLElement;
  title: HTMLElement;
  composer: Composer;
  sidebar: Sidebar;
  picker: ModelPicker;
  banner: BannerSlot;
  announcer: Announcer;
  scroller: Scroller;
  /** the page now shows this conversation (null: a new chat): the router's `went` */
  went: (id: string | null) => void;
}

type Current = Pick<ConversationSummary, "id" | "title">;

export class ConversationView {
  readonly answers: AnswerController;

  private conversation: Current | null = null;
  private views: AnswerView[] = [];
  /** increases with each navigation, so a late answer for an old page is dropped */
  private generation = 0;
  /** the conversation that could not load for a 401: opened again after sign-in */
  private openAfterSignIn: string | null = null;
  /** a new conversation whose start event brought no title: listed when its answer ends */
  private unlisted: string | null = null;
  /** streams of turns the feed told of while an answer streamed here: each one that is
   *  not this page's own is shown (the conversation read again) once that answer ends */
  private readonly feedTurns = new Set<string>();
  /** a reset came while an answer streamed here: read the conversation again after it */
  private reloadWhenIdle = false;

  constructor(private readonly parts: ConversationParts) {
    this.answers = new AnswerController(this.page(), parts.composer);
    // Copy buttons of code blocks: one delegated listener, no inline handler.
    parts.messages.addEventListener("click", (event) => {
      const button = (event.target as Element).closest<HTMLButtonElement>("[data-action=copy-code]");
      if (!button) return;
      const code = button.closest(".code-block")?.querySelector("code");
      if (code) void this.copy(code.textContent ?? "", button);
    });
  }

  /** The id of the conversation on screen; null for a new chat. */
  get id(): string | null {
    return this.conversation?.id ?? null;
  }

  newChat(push: boolean): void {
    this.leave();
    this.conversation = null;
    if (push) this.parts.went(null);
    this.setTitle(null);
    this.parts.sidebar.setActive(null);
    this.parts.emptyState.hidden = false;
    this.parts.composer.focus();
  }

  async open(id: string, push: boolean): Promise<void> {
    const { sidebar, messages } = this.parts;
    const generation = this.leave();
    this.conversation = { id, title: sidebar.title(id) ?? "" };
    if (push) this.parts.went(id);
    sidebar.setActive(id);
    this.setTitle(this.conversation.title || null);
    this.parts.emptyState.hidden = true;
    messages.setAttribute("aria-busy", "true");
    let conversation: Conversation;
    try {
      conversation = await api.conversation(id);
    } catch (error) {
      if (generation !== this.generation) return;
      messages.setAttribute("aria-busy", "false");
      this.openFailed(id, error);
      return;
    }
    if (generation !== this.generation) return;
    messages.setAttribute("aria-busy", "false");
    this.show(conversation);
    this.parts.composer.focus();
  }

  /** Signed in again: open the conversation a 401 kept from loading. */
  signedIn(): void {
    const id = this.openAfterSignIn;
    this.openAfterSignIn = null;
    if (id !== null) void this.open(id, false);
  }

  /** Answer `text`; false when it was not taken (an answer is still streaming). */
  send(text: string): boolean {
    if (this.answers.active || text.trim() === "") return false;
    this.parts.banner.clear();
    this.finishDetached();
    this.parts.emptyState.hidden = true;
    this.parts.messages.append(userMessageView(text));
    const view = this.answerView([]);
    this.parts.messages.append(view.element);
    this.views.push(view);
    this.markLast();
    this.answers.send(view, text);
    this.parts.scroller.stick();
    return true;
  }

  /** A new version of the last answer. */
  regenerate(): void {
    const view = this.views[this.views.length - 1];
    if (this.answers.active || !this.conversation || !view) return;
    this.parts.banner.clear();
    this.answers.regenerate(view);
  }

  /** The sidebar deleted conversation `id`. */
  deleted(id: string): void {
    if (this.conversation?.id === id) this.newChat(true);
    this.parts.announcer.say("Conversation deleted");
  }

  /** The sidebar renamed conversation `id`. */
  renamed(id: string, title: string): void {
    if (this.conversation?.id === id) {
      this.conversation.title = title;
      this.setTitle(title);
    }
    this.parts.announcer.say("Conversation renamed");
  }

  /** A change from the conversation feed (feed.ts) to conversation `id`: a turn sent
   *  from another tab shows here with its answer streaming; a rename or a delete too.
   *  The page's own changes come back this way as well, and change nothing. */
  changed(change: ConversationChange): void {
    const { conversation_id: id, title, stream_id: streamId } = change;
    if (this.conversation?.id !== id) return;
    switch (change.change) {
      case "created":
      case "turn":
        if (streamId === undefined || this.shows(streamId)) return;
        if (this.answers.active) this.feedTurns.add(streamId);
        else void this.reload();
        break;
      case "answered":
        // An answer shown as streaming that no reader follows (it was missed): show it stored.
        if (!this.answers.active && this.views.some((v) => v.current.status === "streaming")) void this.reload();
        break;
      case "renamed":
        if (title !== undefined && title !== this.conversation.title) {
          this.conversation.title = title;
          this.setTitle(title);
        }
        break;
      case "deleted":
        this.newChat(true);
        this.parts.banner.show("The conversation you had open was deleted.");
        break;
      default:
        break;
    }
  }

  /** Read the conversation on screen again and show it as stored (a feed `reset`, or a
   *  turn from elsewhere); an answer streaming there is followed live (replay). */
  async reload(): Promise<void> {
    const id = this.conversation?.id;
    if (!id) return;
    if (this.answers.active) {
      this.reloadWhenIdle = true;
      return;
    }
    const generation = this.generation;
    let conversation: Conversation;
    try {
      conversation = await api.conversation(id);
    } catch {
      return; // gone or unreachable: a delete comes on the feed, and the page keeps what it shows
    }
    if (generation !== this.generation || this.answers.active) return;
    this.views = [];
    this.parts.messages.replaceChildren();
    this.show(conversation);
  }

  /** Does an answer on screen (any version) read stream `streamId`? */
  private shows(streamId: string): boolean {
    return this.views.some((view) => view.versions.some((version) => version.streamId === streamId));
  }

  /** This page's answer ended: show the turns sent elsewhere meanwhile. */
  private catchUp(): void {
    const missed = [...this.feedTurns].some((streamId) => !this.shows(streamId));
    this.feedTurns.clear();
    if (missed || this.reloadWhenIdle) void this.reload();
    this.reloadWhenIdle = false;
  }

  /** What the answer controller asks of the page. */
  private page(): AnswerPage {
    const { picker, scroller, announcer } = this.parts;
    return {
      conversationId: () => this.conversation?.id ?? null,
      settings: () => ({ model: picker.model, options: picker.options }),
      started: (id, title) => this.started(id, title),
      busy: (busy) => {
        for (const view of this.views) view.setBusy(busy);
        this.markLast();
        if (!busy) {
          this.list();
          this.catchUp();
        }
      },
      grew: () => scroller.follow(),
      regenerate: () => this.regenerate(),
      tooLong: (view, text, message) => this.tooLong(view, text, message),
      announce: (text) => announcer.say(text),
    };
  }

  /** The server refused `text` as too long (nothing was stored): the message and its
   *  answer leave the page, and the text goes back into the message box to be shortened. */
  private tooLong(view: AnswerView, text: string, message: string): void {
    const { composer, banner, messages } = this.parts;
    const question = view.element.previousElementSibling;
    if (question?.matches("[data-testid=message-user]")) question.remove();
    view.element.remove();
    this.views = this.views.filter((v) => v !== view);
    this.markLast();
    if (messages.childElementCount === 0 && this.conversation === null) this.parts.emptyState.hidden = false;
    composer.setText(text);
    banner.show(message, () => composer.setText(composer.text), "Edit message", "edit-message");
  }

  /** Leave the conversation on screen: its answer keeps streaming on the server. */
  private leave(): number {
    this.answers.leave();
    this.list();
    this.feedTurns.clear();
    this.reloadWhenIdle = false;
    this.parts.banner.clear();
    this.views = [];
    this.parts.messages.replaceChildren();
    this.parts.messages.setAttribute("aria-busy", "false");
    this.generation += 1;
    return this.generation;
  }

  private openFailed(id: string, error: unknown): void {
    const { banner } = this.parts;
    if (error instanceof Unauthorized) {
      this.openAfterSignIn = id;
    } else if (error instanceof ApiError && error.status === 404) {
      banner.show("This conversation does not exist (it may have been deleted).", () => this.newChat(true), "New chat");
    } else {
      banner.show(`Could not load this conversation. ${describeFailure(error)}`, () => void this.open(id, false));
    }
  }

  private show(conversation: Conversation): void {
    this.conversation = { id: conversation.id, title: conversation.title };
    this.setTitle(conversation.title);
    this.parts.picker.choose(conversation.model);
    // Answers are grouped by the user message they answer (`reply_to`): regenerate
    // keeps the earlier ones, shown as versions; the newest is on screen. A tool
    // result shows under the call it answers, on that answer's card.
    const groups = new Map<string, AnswerView>();
    const { results, called } = toolResults(conversation);
    for (const message of conversation.messages) {
      if (message.role === "tool") {
        if (!called.has(message.tool_call_id ?? "")) this.parts.messages.append(orphanToolResult(message));
      } else if (message.role === "user") {
        this.parts.messages.append(userMessageView(message.content));
      } else if (message.role === "assistant") {
        const group = message.reply_to ? groups.get(message.reply_to) : undefined;
        if (group) {
          group.versions.push(versionFromStored(message, results));
          continue;
        }
        const view = this.answerView([versionFromStored(message, results)]);
        if (message.reply_to) groups.set(message.reply_to, view);
        this.parts.messages.append(view.element);
        this.views.push(view);
      }
    }
    for (const view of groups.values()) view.show(view.versions.length - 1);
    this.markLast();
    this.parts.scroller.stick();
    const streaming = this.views.find((v) => v.current.status === "streaming" && v.current.streamId);
    if (streaming) this.answers.replay(streaming);
  }

  private answerView(versions: AnswerVersion[]): AnswerView {
    const view: AnswerView = new AnswerView(versions, {
      regenerate: () => this.regenerate(),
      copied: () => void this.copy(view.current.content, null),
    });
    return view;
  }

  /** The server started an answer in conversation `id`: a new one gets its URL and its
   *  sidebar entry. The title is the server's (`start.title`); this page never makes one. */
  private started(id: string, title: string | undefined): void {
    const { sidebar } = this.parts;
    const now = new Date().toISOString();
    if (this.conversation?.id === id) {
      if (title !== undefined) {
        this.conversation.title = title;
        this.setTitle(title);
        sidebar.setTitle(id, title);
      }
      sidebar.upsert({ id, title: this.conversation.title, model: null, created: now, updated: now });
      return;
    }
    this.conversation = { id, title: title ?? "" };
    this.parts.went(id);
    sidebar.setActive(id);
    this.setTitle(title ?? null);
    if (title !== undefined) {
      sidebar.upsert({ id, title, model: this.parts.picker.model ?? null, created: now, updated: now });
    } else {
      this.unlisted = id;
    }
  }

  /** A server that sends no title in `start` (before issue 12): the new conversation is
   *  shown as the server lists it. Asked once its answer ended (or the page left it):
   *  the server writes a new conversation while the answer starts, not before. */
  private list(): void {
    const id = this.unlisted;
    this.unlisted = null;
    if (id !== null) void this.listed(id);
  }

  private async listed(id: string): Promise<void> {
    let summary: ConversationSummary;
    try {
      const { title, model, created, updated } = await api.conversation(id);
      summary = { id, title, model, created, updated };
    } catch {
      return; // not kept (a server without a store), or not reachable: the list shows what it has
    }
    this.parts.sidebar.upsert(summary);
    if (this.conversation?.id === id && this.conversation.title === "") {
      this.conversation.title = summary.title;
      this.setTitle(summary.title);
    }
  }

  /** Only the last answer offers Regenerate. */
  private markLast(): void {
    this.views.forEach((view, i) => view.setLast(i === this.views.length - 1));
  }

  private setTitle(title: string | null): void {
    this.parts.title.textContent = title || "New chat";
    document.title = title ? `${title} · tokenrelay` : "tokenrelay";
  }

  /** An answer left unfinished by a lost connection is closed before a new one starts. */
  private finishDetached(): void {
    for (const view of this.views) {
      if (view.streaming && view !== this.answers.active) {
        view.endStream();
        view.clearError();
      }
    }
  }

  private async copy(text: string, button: HTMLButtonElement | null): Promise<void> {
    const ok = await copyText(text);
    this.parts.announcer.say(ok ? "Copied" : "Could not copy");
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
}

/** The stored tool results by the id of their call, and the ids of every stored call. */
function toolResults(conversation: Conversation): { results: Map<string, string>; called: Set<string> } {
  const results = new Map<string, string>();
  const called = new Set<string>();
  for (const message of conversation.messages) {
    if (message.role === "tool" && message.tool_call_id) results.set(message.tool_call_id, message.content);
    for (const call of message.tool_calls ?? []) called.add(call.id);
  }
  return { results, called };
}
