import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConversationView } from "../src/conversation";
import { Announcer } from "../src/ui/announcer";
import { BannerSlot } from "../src/ui/banner";
import { Composer } from "../src/ui/composer";
import { ModelPicker } from "../src/ui/picker";
import { Scroller } from "../src/ui/scroller";
import { Sidebar } from "../src/ui/sidebar";

/** The parts of index.html the conversation view works with. */
const PAGE = `
  <h1 id="chat-title">New chat</h1><select id="model-select"></select>
  <ul id="conversation-list"></ul><p id="conversation-empty"></p><button id="load-more"></button>
  <div id="scroller"><section id="messages"></section><div id="empty-state"></div></div>
  <button id="scroll-down"></button><div id="banner-slot"></div><div id="announcer"></div>
  <form id="composer-form"><textarea id="composer-input"></textarea>
    <button type="submit" id="send"></button><button type="button" id="stop" hidden></button></form>`;

function sse(id: number, type: string, data: unknown): string {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The server: POST /api/chat answers "Hi!" with this start event; GET of the
 *  conversation lists it with the title the server keeps. */
function server(start: Record<string, unknown>) {
  const requests: string[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    requests.push(`${init?.method ?? "GET"} ${url}`);
    if (url === "/api/chat") {
      const body = sse(1, "start", start) + sse(2, "delta", { text: "Hi!" }) + sse(3, "done", { finish_reason: "stop" });
      return new Response(body, { headers: { "Content-Type": "text/event-stream", "X-Stream-Id": "st_1" } });
    }
    if (url === "/api/conversations/conv_1") {
      const conversation = { id: "conv_1", title: "The title the server keeps", model: "scripted",
        created: "2025-01-01T00:00:00Z", updated: "2025-01-01T00:00:00Z", messages: [] };
      return new Response(JSON.stringify(conversation), { headers: { "Content-Type": "application/json" } });
    }
    return new Response("{}", { status: 404 });
  });
  vi.stubGlobal("fetch", fetch);
  return requests;
}

function setUp() {
  document.body.innerHTML = PAGE;
  const get = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  get("scroller").scrollTo = () => undefined; // jsdom does not scroll
  const banner = new BannerSlot(get("banner-slot"));
  const composer = new Composer({
    form: get("composer-form"), input: get("composer-input"), send: get("send"), stop: get("stop"),
    onSend: () => true,
  });
  const sidebar = new Sidebar(get("conversation-list"), get("conversation-empty"), get("load-more"), {
    open: () => undefined, deleted: () => undefined, renamed: () => undefined, error: () => undefined,
  });
  const went = vi.fn();
  const view = new ConversationView({
    messages: get("messages"), emptyState: get("empty-state"), title: get("chat-title"),
    composer, sidebar, banner,
    picker: new ModelPicker(get("model-select"), () => undefined),
    announcer: new Announcer(get("announcer")),
    scroller: new Scroller(get("scroller"), get("scroll-down"), () => undefined),
    went,
  });
  return {
    view, went,
    header: () => get("chat-title").textContent,
    entries: () => [...document.querySelectorAll("[data-testid=conversation-item]")].map((e) => e.textContent),
    answered: () => vi.waitFor(() =>
      expect(document.querySelector("[data-testid=message-assistant]")?.getAttribute("data-status")).toBe("complete")),
  };
}

const START = { stream_id: "st_1", conversation_id: "conv_1", message_id: "msg_1", model: "scripted" };

describe("the conversation's title", () => {
  beforeEach(() => localStorage.clear());
  afterEach(() => vi.unstubAllGlobals());

  it("is the start event's: in the header and the sidebar, with no title made up by the page", async () => {
    const requests = server({ ...START, title: "Named by the server" });
    const t = setUp();
    t.view.send("  what   the user typed  ");
    await t.answered();
    expect(t.header()).toBe("Named by the server");
    expect(document.title).toBe("Named by the server · tokenrelay");
    expect(t.entries()).toEqual(["Named by the server"]);
    expect(t.went).toHaveBeenCalledWith("conv_1");
    expect(requests).toEqual(["POST /api/chat"]);
  });

  it("renames a conversation on screen to the title its next start event brings", async () => {
    server({ ...START, title: "Named by the server" });
    const t = setUp();
    t.view.send("first");
    await t.answered();
    server({ ...START, title: "Renamed elsewhere" });
    t.view.send("second");
    await vi.waitFor(() => expect(t.header()).toBe("Renamed elsewhere"));
    expect(t.entries()).toEqual(["Renamed elsewhere"]);
  });

  it("from a server that sends none, is the one the server lists once the answer ended", async () => {
    const requests = server(START);
    const t = setUp();
    t.view.send("  what   the user typed  ");
    await t.answered();
    await vi.waitFor(() => expect(t.entries()).toEqual(["The title the server keeps"]));
    expect(t.header()).toBe("The title the server keeps");
    expect(requests).toEqual(["POST /api/chat", "GET /api/conversations/conv_1"]);
  });
});

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

const STORED = { model: "scripted", created: "", stream_id: null, reply_to: null, error: null, usage: null, timings: null };

describe("a message too long for the model (issue 14)", () => {
  beforeEach(() => localStorage.clear());
  afterEach(() => vi.unstubAllGlobals());

  it("goes back into the message box with the server's words, and no Retry", async () => {
    const message = "The message is 9,100 tokens, 908 over this model's context window of 8,192 tokens: shorten it.";
    const fetch = vi.fn(async () => json({ error: { code: "context_length_exceeded", message } }, 400));
    vi.stubGlobal("fetch", fetch);
    const t = setUp();
    t.view.send("a long paste");
    const banner = () => document.querySelector("#banner-slot [data-testid=error-banner]");
    await vi.waitFor(() => expect(banner()?.textContent).toContain(message));
    expect(document.querySelector("[data-testid=retry]")).toBeNull();
    expect(document.querySelector("[data-testid=edit-message]")?.textContent).toBe("Edit message");
    expect((document.getElementById("composer-input") as HTMLTextAreaElement).value).toBe("a long paste");
    expect(document.activeElement?.id).toBe("composer-input");
    // Nothing was stored: neither the question nor an answer stays on the page.
    expect(document.querySelectorAll("[data-testid=message-user], [data-testid=message-assistant]")).toHaveLength(0);
    expect(fetch).toHaveBeenCalledTimes(1);
  });
});

describe("the conversation on screen, from the feed (issue 14)", () => {
  beforeEach(() => {
    localStorage.clear();
    vi.stubGlobal("matchMedia", () => ({ matches: false })); // jsdom has none
  });
  afterEach(() => vi.unstubAllGlobals());

  function stored(messages: Array<Record<string, unknown>>) {
    return { id: "conv_1", title: "Rivers", model: "scripted", created: "", updated: "", messages };
  }

  it("shows a turn sent from another tab, reading the conversation again; its own turn comes back as nothing", async () => {
    let messages: Array<Record<string, unknown>> = [
      { ...STORED, id: "m1", role: "user", content: "first question" },
      { ...STORED, id: "m2", role: "assistant", content: "first answer", status: "complete", stream_id: "st_1", reply_to: "m1" },
    ];
    const requests: string[] = [];
    vi.stubGlobal("fetch", vi.fn(async (input: RequestInfo | URL) => {
      requests.push(String(input));
      return json(stored(messages));
    }));
    const t = setUp();
    await t.view.open("conv_1", false);
    const questions = () => [...document.querySelectorAll("[data-testid=message-user]")].map((e) => e.textContent);
    expect(questions()).toEqual(["first question"]);
    t.view.changed({ change: "turn", conversation_id: "conv_1", stream_id: "st_1" }); // shown already
    t.view.changed({ change: "turn", conversation_id: "conv_other", stream_id: "st_9" }); // another one
    expect(requests).toEqual(["/api/conversations/conv_1"]);
    messages = [...messages,
      { ...STORED, id: "m3", role: "user", content: "second question" },
      { ...STORED, id: "m4", role: "assistant", content: "second answer", status: "complete", stream_id: "st_2", reply_to: "m3" }];
    t.view.changed({ change: "turn", conversation_id: "conv_1", stream_id: "st_2" });
    await vi.waitFor(() => expect(questions()).toEqual(["first question", "second question"]));
    expect(document.querySelectorAll("[data-testid=message-assistant]")).toHaveLength(2);
    t.view.changed({ change: "turn", conversation_id: "conv_1", stream_id: "st_2" }); // again: nothing
    expect(requests).toHaveLength(2);
  });

  it("follows a rename and a delete of the open conversation", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(stored([]))));
    const t = setUp();
    await t.view.open("conv_1", false);
    t.view.changed({ change: "renamed", conversation_id: "conv_1", title: "Renamed in another tab" });
    expect(t.header()).toBe("Renamed in another tab");
    t.view.changed({ change: "deleted", conversation_id: "conv_1" });
    expect(t.view.id).toBeNull();
    expect(t.header()).toBe("New chat");
    expect(t.went).toHaveBeenCalledWith(null);
  });
});
