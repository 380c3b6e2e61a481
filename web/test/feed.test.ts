import { afterEach, describe, expect, it, vi } from "vitest";
import type { ConversationChange } from "../src/api";
import { ConversationFeed, type FeedSource } from "../src/feed";
import { Sidebar } from "../src/ui/sidebar";

/** An EventSource the test drives: it dispatches what the test sends, as the browser does. */
class FakeSource implements FeedSource {
  readyState = 0;
  closed = false;
  private readonly listeners = new Map<string, ((event: MessageEvent) => void)[]>();

  constructor(readonly url: string) {}

  addEventListener(type: string, listener: (event: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  emit(type: string, data = ""): void {
    if (type === "open") this.readyState = 1;
    for (const listener of this.listeners.get(type) ?? []) listener(new MessageEvent(type, { data }));
  }

  /** the connection dropped (`closed`: with an error status, so the browser gives up) */
  fail(closed: boolean): void {
    this.readyState = closed ? 2 : 0;
    this.emit("error");
  }
}

function feed() {
  const sources: FakeSource[] = [];
  const changes: ConversationChange[] = [];
  const resets = { count: 0 };
  const conversationFeed = new ConversationFeed({
    change: (change) => changes.push(change),
    reset: () => { resets.count += 1; },
  }, {
    open: (url) => {
      const source = new FakeSource(url);
      sources.push(source);
      return source;
    },
    retryMs: 0,
  });
  return { feed: conversationFeed, sources, changes, resets, last: () => sources[sources.length - 1] };
}

describe("ConversationFeed", () => {
  it("opens one EventSource on the feed and hands on its changes and resets", () => {
    const t = feed();
    t.feed.start();
    t.feed.start(); // one per page
    expect(t.sources.map((s) => s.url)).toEqual(["/api/conversations/events"]);
    t.last().emit("open");
    const change = { change: "turn", conversation_id: "conv_1", stream_id: "st_2" };
    t.last().emit("conversation", JSON.stringify(change));
    t.last().emit("conversation", "not json"); // skipped
    t.last().emit("reset", JSON.stringify({ change: "reset" }));
    expect(t.changes).toEqual([change]);
    expect(t.resets.count).toBe(1);
  });

  it("leaves a dropped connection to the browser, which resumes it with Last-Event-ID", () => {
    const t = feed();
    t.feed.start();
    t.last().emit("open");
    t.last().fail(false);
    t.last().emit("open");
    expect(t.sources).toHaveLength(1);
    expect(t.resets.count).toBe(0); // the server sends what was missed, or a reset of its own
  });

  it("opens a new feed after the browser gave up, and reloads since what was missed is unknown", async () => {
    const t = feed();
    t.feed.start();
    t.last().emit("open");
    t.last().fail(true);
    await vi.waitFor(() => expect(t.sources).toHaveLength(2));
    expect(t.sources[0].closed).toBe(true);
    expect(t.resets.count).toBe(0);
    t.last().emit("open");
    expect(t.resets.count).toBe(1);
  });

  it("closes on stop (signed out) and opens nothing more", async () => {
    const t = feed();
    t.feed.start();
    t.last().fail(true);
    t.feed.stop();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(t.sources).toHaveLength(1);
  });
});

function sidebar() {
  document.body.innerHTML = `<ul id="list"></ul><p id="empty"></p><button id="more"></button>`;
  const get = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  const bar = new Sidebar(get("list"), get("empty"), get("more"), {
    open: () => undefined, deleted: () => undefined, renamed: () => undefined, error: () => undefined,
  });
  const entries = () => [...document.querySelectorAll("[data-testid=conversation-item]")]
    .map((e) => `${e.getAttribute("data-id")}:${e.querySelector("a")!.textContent}`);
  return { bar, entries };
}

describe("Sidebar, from the feed", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("adds new conversations at the top, moves one with a new turn up, renames and removes, once each", () => {
    const t = sidebar();
    const change = (c: Partial<ConversationChange>) => t.bar.changed({ change: "created", conversation_id: "", ...c });
    change({ change: "created", conversation_id: "c1", title: "First" });
    change({ change: "created", conversation_id: "c2", title: "Second" });
    change({ change: "created", conversation_id: "c2", title: "Second" }); // again (a resumed feed)
    expect(t.entries()).toEqual(["c2:Second", "c1:First"]);
    change({ change: "turn", conversation_id: "c1", title: "First", stream_id: "st_3" });
    expect(t.entries()).toEqual(["c1:First", "c2:Second"]);
    change({ change: "answered", conversation_id: "c2" });
    expect(t.entries()).toEqual(["c1:First", "c2:Second"]);
    change({ change: "renamed", conversation_id: "c2", title: "Renamed" });
    expect(t.entries()).toEqual(["c1:First", "c2:Renamed"]);
    expect(document.querySelector("[data-id=c2] [data-testid=rename-conversation]")!.getAttribute("aria-label"))
      .toBe("Rename “Renamed”");
    change({ change: "deleted", conversation_id: "c1" });
    change({ change: "deleted", conversation_id: "c1" });
    expect(t.entries()).toEqual(["c2:Renamed"]);
  });

  it("asks the server for a conversation it does not list when a turn brings no title", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({
      id: "c9", title: "Listed by the server", model: null, created: "", updated: "", messages: [],
    }), { headers: { "Content-Type": "application/json" } })));
    const t = sidebar();
    t.bar.changed({ change: "turn", conversation_id: "c9", stream_id: "st_1" });
    await vi.waitFor(() => expect(t.entries()).toEqual(["c9:Listed by the server"]));
  });
});
