/** The conversation list: newest first, paginated, with rename (inline) and delete (confirmed). */

import { ApiError, type ConversationChange, type ConversationSummary, Unauthorized, api } from "../api";
import { describeFailure } from "../format";
import { conversationPath } from "../router";
import { h, iconButton } from "./dom";

export interface SidebarHandlers {
  open: (id: string) => void;
  deleted: (id: string) => void;
  renamed: (id: string, title: string) => void;
  error: (message: string, retry?: () => void) => void;
}

export class Sidebar {
  private readonly items = new Map<string, HTMLLIElement>();
  private readonly summaries = new Map<string, ConversationSummary>();
  private nextCursor: string | null = null;
  private activeId: string | null = null;
  private loading = false;
  /** Conversations upserted while a page was loading (see `load`). */
  private readonly startedMeanwhile = new Set<string>();

  constructor(
    private readonly list: HTMLUListElement,
    private readonly empty: HTMLElement,
    private readonly loadMore: HTMLButtonElement,
    private readonly handlers: SidebarHandlers,
  ) {
    loadMore.addEventListener("click", () => void this.load(false));
  }

  /** Load the first page (`reset`) or the next one. */
  async load(reset = true): Promise<void> {
    if (this.loading) return;
    this.loading = true;
    this.loadMore.disabled = true;
    this.startedMeanwhile.clear();
    try {
      const page = await api.conversations(reset ? null : this.nextCursor);
      if (reset) {
        // A conversation started while the page was loading is newer than the page:
        // keep it (at the top) instead of wiping it with the older list.
        for (const [id, item] of [...this.items]) {
          if (this.startedMeanwhile.has(id)) continue;
          item.remove();
          this.items.delete(id);
          this.summaries.delete(id);
        }
      }
      for (const conversation of page.conversations) {
        if (!this.items.has(conversation.id)) this.list.append(this.item(conversation));
      }
      this.nextCursor = page.next_cursor;
    } catch (error) {
      // A 401 brings the sign-in form, and the list is loaded again after it.
      if (error instanceof Unauthorized) return;
      this.handlers.error(`Could not load conversations. ${describeFailure(error)}`, () => void this.load(reset));
    } finally {
      this.loading = false;
      this.loadMore.disabled = false;
      this.loadMore.hidden = this.nextCursor === null;
      this.empty.hidden = this.items.size > 0;
    }
  }

  /** Forget every conversation (signed out: the next key may be another owner's). */
  clear(): void {
    for (const item of this.items.values()) item.remove();
    this.items.clear();
    this.summaries.clear();
    this.startedMeanwhile.clear();
    this.nextCursor = null;
    this.activeId = null;
    this.loadMore.hidden = true;
    this.empty.hidden = false;
  }

  /** A conversation that just started or got a new answer goes to the top. */
  upsert(conversation: ConversationSummary): void {
    if (this.loading) this.startedMeanwhile.add(conversation.id);
    const existing = this.items.get(conversation.id);
    if (existing) {
      if (this.list.firstElementChild !== existing) this.list.prepend(existing);
      return;
    }
    this.list.prepend(this.item(conversation));
    this.empty.hidden = true;
  }

  /** A change from the conversation feed (feed.ts), this page's own or another's: a
   *  repeat changes nothing. A conversation with a new turn goes to the top. */
  changed(change: ConversationChange): void {
    const { conversation_id: id, title } = change;
    switch (change.change) {
      case "created":
      case "turn":
        if (title !== undefined) this.setTitle(id, title);
        if (this.items.has(id) || title !== undefined) {
          const now = new Date().toISOString();
          this.upsert({ id, title: title ?? "", model: null, created: now, updated: now });
        } else {
          void this.fetchAndList(id);
        }
        break;
      case "renamed":
        if (title !== undefined) this.setTitle(id, title);
        break;
      case "deleted":
        this.remove(id);
        break;
      default:
        break; // "answered", or a change this page does not know: the list stays
    }
  }

  /** Take conversation `id` off the list (deleted here or elsewhere). */
  remove(id: string): void {
    const item = this.items.get(id);
    item?.remove();
    this.items.delete(id);
    this.summaries.delete(id);
    this.empty.hidden = this.items.size > 0;
  }

  private async fetchAndList(id: string): Promise<void> {
    try {
      const { title, model, created, updated } = await api.conversation(id);
      this.upsert({ id, title, model, created, updated });
    } catch {
      // deleted meanwhile, or unreachable: the next reset or load shows it
    }
  }

  setActive(id: string | null): void {
    if (this.activeId) this.items.get(this.activeId)?.querySelector("a")?.removeAttribute("aria-current");
    this.activeId = id;
    for (const [itemId, item] of this.items) item.classList.toggle("active", itemId === id);
    if (id) this.items.get(id)?.querySelector("a")?.setAttribute("aria-current", "page");
  }

  setTitle(id: string, title: string): void {
    const summary = this.summaries.get(id);
    if (summary) summary.title = title;
    const item = this.items.get(id);
    const link = item?.querySelector("a");
    if (link) {
      link.textContent = title;
      link.title = title;
    }
    item?.querySelector("[data-testid=rename-conversation]")?.setAttribute("aria-label", `Rename “${title}”`);
    item?.querySelector("[data-testid=delete-conversation]")?.setAttribute("aria-label", `Delete “${title}”`);
  }

  title(id: string): string | null {
    return this.summaries.get(id)?.title ?? null;
  }

  private item(conversation: ConversationSummary): HTMLLIElement {
    this.summaries.set(conversation.id, conversation);
    const link = h("a", {
      class: "conv-link",
      text: conversation.title,
      attrs: { href: conversationPath(conversation.id), title: conversation.title },
    });
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || event.button !== 0) return;
      event.preventDefault();
      this.handlers.open(conversation.id);
    });
    const item = h("li", { class: "conv-item", testid: "conversation-item", data: { id: conversation.id } }, link);
    item.append(this.actions(conversation.id, item));
    if (conversation.id === this.activeId) {
      item.classList.add("active");
      link.setAttribute("aria-current", "page");
    }
    this.items.set(conversation.id, item);
    return item;
  }

  private actions(id: string, item: HTMLLIElement): HTMLElement {
    const title = () => this.summaries.get(id)?.title ?? "conversation";
    const rename = iconButton("pencil", "Rename", { class: "icon-btn", testid: "rename-conversation" });
    const remove = iconButton("trash", "Delete", { class: "icon-btn", testid: "delete-conversation" });
    rename.addEventListener("click", () => this.startRename(id, item));
    remove.addEventListener("click", () => this.confirmDelete(id, item));
    rename.setAttribute("aria-label", `Rename “${title()}”`);
    remove.setAttribute("aria-label", `Delete “${title()}”`);
    return h("div", { class: "conv-actions" }, rename, remove);
  }

  private startRename(id: string, item: HTMLLIElement): void {
    const link = item.querySelector<HTMLAnchorElement>(".conv-link");
    const actions = item.querySelector<HTMLElement>(".conv-actions");
    if (!link || !actions) return;
    const old = this.summaries.get(id)?.title ?? "";
    const input = h("input", {
      class: "conv-rename",
      testid: "rename-input",
      attrs: { type: "text", "aria-label": "New title", maxlength: "500" },
    });
    input.value = old;
    link.hidden = true;
    actions.hidden = true;
    item.insertBefore(input, link);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save: boolean) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      input.remove();
      link.hidden = false;
      actions.hidden = false;
      link.focus();
      if (!save || title === "" || title === old) return;
      this.setTitle(id, title);
      try {
        await api.rename(id, title);
        this.handlers.renamed(id, title);
      } catch (error) {
        this.setTitle(id, old);
        this.handlers.error(`Could not rename the conversation. ${describeFailure(error)}`);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        void finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        void finish(false);
      }
    });
    input.addEventListener("blur", () => void finish(true));
  }

  private confirmDelete(id: string, item: HTMLLIElement): void {
    const actions = item.querySelector<HTMLElement>(".conv-actions");
    if (!actions || item.querySelector(".conv-confirm")) return;
    actions.hidden = true;
    const yes = h("button", { class: "btn btn-small btn-danger", testid: "confirm-delete", text: "Delete", attrs: { type: "button" } });
    const no = h("button", { class: "btn btn-small", testid: "cancel-delete", text: "Cancel", attrs: { type: "button" } });
    const confirm = h(
      "div",
      { class: "conv-confirm", attrs: { role: "group", "aria-label": "Delete this conversation?" } },
      h("span", { text: "Delete this chat?" }), yes, no,
    );
    item.append(confirm);
    no.focus();
    const close = () => {
      confirm.remove();
      actions.hidden = false;
      actions.querySelector<HTMLButtonElement>("[data-testid=delete-conversation]")?.focus();
    };
    no.addEventListener("click", close);
    confirm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        close();
      }
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api.remove(id);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) {
          yes.disabled = false;
          this.handlers.error(`Could not delete the conversation. ${describeFailure(error)}`);
          return;
        }
      }
      const following = (item.nextElementSibling ?? item.previousElementSibling) as HTMLElement | null;
      this.remove(id);
      following?.querySelector<HTMLAnchorElement>(".conv-link")?.focus();
      this.handlers.deleted(id);
    });
  }
}
