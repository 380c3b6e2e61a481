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
