/**
 * The chat page, wired together: which element is which, and who tells whom. What each
 * part does is in its own module: the session (session.ts), the address (router.ts),
 * the conversation on screen (conversation.ts), the answer that streams (answer.ts),
 * and the widgets under ui/.
 */

import { ConversationView } from "./conversation";
import { ConversationFeed } from "./feed";
import { Router } from "./router";
import { Session } from "./session";
import { Announcer } from "./ui/announcer";
import { BannerSlot } from "./ui/banner";
import { Composer } from "./ui/composer";
import { h } from "./ui/dom";
import { Drawer } from "./ui/drawer";
import { ModelPicker } from "./ui/picker";
import { Scroller } from "./ui/scroller";
import { Sidebar } from "./ui/sidebar";

const SUGGESTIONS = [
  "Explain Server-Sent Events in one paragraph",
  "Write a Python function that merges two sorted lists",
  "Compare TCP and UDP in a table",
  "Give me three tips for writing clear commit messages",
];

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}

export function start(): void {
  const announcer = new Announcer(byId("announcer"));
  const banner = new BannerSlot(byId("banner-slot"));
  const composer = new Composer({
    form: byId("composer-form"),
    input: byId("composer-input"),
    send: byId("send"),
    stop: byId("stop"),
    onSend: (text): boolean => conversation.send(text),
  });
  const scroller = new Scroller(byId("scroller"), byId("scroll-down"), () => composer.focus());
  const picker = new ModelPicker(byId("model-select"), (message, retry) => banner.show(message, retry));
  const drawer = new Drawer({
    app: byId("app"),
    toggle: byId("menu-toggle"),
    close: byId("sidebar-close"),
    backdrop: byId("backdrop"),
    fallbackFocus: byId("new-chat"),
  });
  const sidebar = new Sidebar(byId("conversation-list"), byId("conversation-empty"), byId("load-more"), {
    open: (id) => {
      drawer.close();
      void conversation.open(id, true);
    },
    deleted: (id) => conversation.deleted(id),
    renamed: (id, title) => conversation.renamed(id, title),
    error: (message, retry) => banner.show(message, retry),
  });
  const router = new Router((id) => (id === null ? conversation.newChat(false) : void conversation.open(id, false)));
  const conversation: ConversationView = new ConversationView({
    messages: byId("messages"),
    emptyState: byId("empty-state"),
    title: byId("chat-title"),
    composer, sidebar, picker, banner, announcer, scroller,
    went: (id) => router.went(id),
  });
  // One feed per page: what changed in this owner's conversations, here or elsewhere.
  const feed = new ConversationFeed({
    change: (change) => {
      sidebar.changed(change);
      conversation.changed(change);
    },
    reset: () => {
      void sidebar.load();
      void conversation.reload();
    },
  });
  const session = new Session({
    signIn: {
      dialog: byId("signin"),
      form: byId("signin-form"),
      reason: byId("signin-reason"),
      input: byId("signin-key"),
      error: byId("signin-error"),
      submit: byId("signin-submit"),
    },
    account: byId("account"),
    banner, announcer,
  }, {
    ready: (again) => {
      void picker.load();
      void sidebar.load();
      feed.start();
      if (!again) {
        router.route();
        return;
      }
      // Signed in again, maybe with another key (another owner): fresh history.
      conversation.signedIn();
      composer.focus();
    },
    signedOut: () => {
      // Nothing of this key's stays on screen for whoever signs in next.
      drawer.close();
      feed.stop();
      conversation.newChat(true);
      sidebar.clear();
      composer.clear();
    },
  });

  for (const id of ["new-chat", "header-new-chat"]) {
    byId(id).addEventListener("click", () => {
      drawer.close();
      conversation.newChat(true);
    });
  }
  byId("brand").addEventListener("click", (event) => {
    event.preventDefault();
    conversation.newChat(true);
  });
  byId("sign-out").addEventListener("click", () => void session.signOut());
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    if (!drawer.dismiss() && composer.stop()) event.preventDefault();
  });
  for (const text of SUGGESTIONS) {
    const button = h("button", { class: "suggestion", testid: "suggestion", text, attrs: { type: "button" } });
    button.addEventListener("click", () => conversation.send(text));
    byId("suggestions").append(h("li", {}, button));
  }

  router.start();
  session.start();
}
