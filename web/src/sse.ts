/**
 * An incremental Server-Sent Events parser, following the WHATWG HTML standard,
 * "Server-sent events" §9.2.6 (interpreting an event stream).
 *
 * Feed it text as it arrives, in pieces of any size; it returns the events that each
 * piece completes. Lines may end in CR, LF or CRLF, and a CRLF may be split between
 * two pieces. Bytes go through `SseDecoder`, which keeps a UTF-8 character that is
 * split between network chunks whole (TextDecoder in stream mode).
 */

export interface SseEvent {
  /** the `event:` field; "message" when the event had none */
  type: string;
  /** the `data:` lines joined by LF */
  data: string;
  /** the last event id in force when this event was dispatched ("" if none yet) */
  lastEventId: string;
}

export class SseParser {
  /** The last event id seen, as EventSource keeps it (it survives events without id). */
  lastEventId = "";
  /** The reconnection time the server asked for with `retry:`, in ms. */
  retry: number | null = null;

  private buffer = "";
  private sawCR = false;
  private data = "";
  private hasData = false;
  private eventType = "";
  private started = false;

  /** Parse the next piece of the stream; returns the events it completes. */
  feed(chunk: string): SseEvent[] {
    const events: SseEvent[] = [];
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      // §9.2.6: one leading U+FEFF BYTE ORDER MARK is ignored.
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    if (this.sawCR && text.charCodeAt(0) === 0x0a) start = 1; // the LF of a split CRLF
    this.sawCR = false;
    let i = start;
    const n = text.length;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x0a || c === 0x0d) {
        const line = this.buffer + text.slice(start, i);
        this.buffer = "";
        this.processLine(line, events);
        if (c === 0x0d) {
          if (i + 1 < n) {
            if (text.charCodeAt(i + 1) === 0x0a) i++;
          } else {
            this.sawCR = true;
          }
        }
        start = i + 1;
      }
      i++;
    }
    if (start < n) this.buffer += text.slice(start);
    return events;
  }

  private processLine(line: string, events: SseEvent[]): void {
    if (line === "") {
      this.dispatch(events);
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // ":" comment (heartbeats)
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1);
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data += value + "\n";
        this.hasData = true;
        break;
      case "id":
        // An id containing NULL is ignored (§9.2.6).
        if (!value.includes("\u0000")) this.lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(events: SseEvent[]): void {
    if (!this.hasData) {
      // No data: nothing is dispatched, and the event type buffer is reset.
      this.eventType = "";
      return;
    }
    // §9.2.6: the last LF of the data buffer is removed at dispatch.
    const data = this.data.endsWith("\n") ? this.data.slice(0, -1) : this.data;
    events.push({ type: this.eventType || "message", data, lastEventId: this.lastEventId });
    this.data = "";
    this.hasData = false;
    this.eventType = "";
  }
}

/** Bytes in, events out: UTF-8 decoding that survives characters split across chunks. */
export class SseDecoder {
  readonly parser = new SseParser();
  private decoder = new TextDecoder("utf-8");

  feed(bytes: Uint8Array): SseEvent[] {
    return this.parser.feed(this.decoder.decode(bytes, { stream: true }));
  }

  /** The end of the stream: an event not followed by a blank line is discarded. */
  end(): SseEvent[] {
    return this.parser.feed(this.decoder.decode());
  }
}
