import { describe, expect, it } from "vitest";
import { SseDecoder, SseParser, type SseEvent } from "../src/sse";

const STREAM = [
  "retry: 3000\n",
  "\n",
  "id: 1\nevent: start\ndata: {\"stream_id\":\"st_1\"}\n\n",
  ": ping\n\n",
  "id: 2\nevent: delta\ndata: {\"text\":\"Hello\"}\n\n",
  "id: 3\nevent: delta\ndata: line one\ndata: line two\n\n",
  "id: 4\nevent: done\ndata: {}\n\n",
].join("");

function parseAll(chunks: string[]): { events: SseEvent[]; parser: SseParser } {
  const parser = new SseParser();
  const events = chunks.flatMap((chunk) => parser.feed(chunk));
  return { events, parser };
}

describe("SseParser", () => {
  it("parses events with their type, data and id", () => {
    const { events, parser } = parseAll([STREAM]);
    expect(events.map((e) => [e.type, e.lastEventId])).toEqual([
      ["start", "1"], ["delta", "2"], ["delta", "3"], ["done", "4"],
    ]);
    expect(events[1].data).toBe('{"text":"Hello"}');
    expect(parser.retry).toBe(3000);
    expect(parser.lastEventId).toBe("4");
  });

  it("joins data lines with LF and drops the last LF", () => {
    const { events } = parseAll(["data: a\ndata:\ndata:  b\n\n"]);
    expect(events).toHaveLength(1);
    expect(events[0].data).toBe("a\n\n b");
    expect(events[0].type).toBe("message");
  });

  it("gives the same events however the stream is cut", () => {
    const whole = parseAll([STREAM]).events;
    expect(parseAll(STREAM.split("")).events).toEqual(whole);
    for (const size of [2, 3, 7, 13]) {
      const chunks: string[] = [];
      for (let i = 0; i < STREAM.length; i += size) chunks.push(STREAM.slice(i, i + size));
      expect(parseAll(chunks).events).toEqual(whole);
    }
  });

  it.each([
    ["LF", "\n"],
    ["CR", "\r"],
    ["CRLF", "\r\n"],
  ])("accepts %s line endings", (_name, eol) => {
    const text = STREAM.replace(/\n/g, eol);
    expect(parseAll([text]).events).toEqual(parseAll([STREAM]).events);
    // and cut between every pair of characters, CR and LF of a CRLF included
    expect(parseAll(text.split("")).events).toEqual(parseAll([STREAM]).events);
  });

  it("does not take a CR at the end of a chunk and a line in the next for a blank line", () => {
    const { events } = parseAll(["data: a\r", "data: b\r", "\r"]);
    expect(events).toEqual([{ type: "message", data: "a\nb", lastEventId: "" }]);
  });

  it("ignores comments, unknown fields and events without data", () => {
    const { events } = parseAll([": comment\nfoo: bar\nevent: ghost\n\ndata: x\n\n"]);
    expect(events).toEqual([{ type: "message", data: "x", lastEventId: "" }]);
  });

  it("keeps the last event id across events without one", () => {
    const { events } = parseAll(["id: 7\ndata: a\n\ndata: b\n\n"]);
    expect(events.map((e) => e.lastEventId)).toEqual(["7", "7"]);
  });

  it("ignores an id that contains NULL and a retry that is not a number", () => {
    const { parser } = parseAll(["id: 1\nretry: 10s\n\nid: 2\u00003\n\n"]);
    expect(parser.lastEventId).toBe("1");
    expect(parser.retry).toBeNull();
  });

  it("reads a field without a colon, and a value without the space", () => {
    const { events } = parseAll(["data\n\ndata:tight\n\n"]);
    expect(events.map((e) => e.data)).toEqual(["", "tight"]);
  });

  it("drops a leading byte order mark", () => {
    const { events } = parseAll(["\ufeffdata: x\n\n"]);
    expect(events[0].data).toBe("x");
  });

  it("does not dispatch an event the stream ends in the middle of", () => {
    const { events } = parseAll(["data: complete\n\ndata: half"]);
    expect(events.map((e) => e.data)).toEqual(["complete"]);
  });
});

describe("SseDecoder", () => {
  it("keeps a UTF-8 character split between network chunks whole", () => {
    const bytes = new TextEncoder().encode('id: 1\nevent: delta\ndata: {"text":"héllo 🌍 ✓"}\n\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      const decoder = new SseDecoder();
      const events = [...decoder.feed(bytes.slice(0, cut)), ...decoder.feed(bytes.slice(cut)), ...decoder.end()];
      expect(events).toHaveLength(1);
      expect(JSON.parse(events[0].data)).toEqual({ text: "héllo 🌍 ✓" });
    }
  });

  it("handles one byte at a time", () => {
    const bytes = new TextEncoder().encode("data: ∑ and 日本\n\n");
    const decoder = new SseDecoder();
    const events = Array.from(bytes).flatMap((b) => decoder.feed(new Uint8Array([b])));
    expect(events.map((e) => e.data)).toEqual(["∑ and 日本"]);
  });
});
