// The `eventsource` npm package (the WHATWG EventSource for Node) reading
// GET /api/streams/{id}: it reconnects by itself with Last-Event-ID after a drop and
// must stop for good at the server's 204 past the end.
// Usage: node eventsource.mjs '{"url": ..., "deadline_ms": ...}'
import { EventSource } from 'eventsource';
import { config, countingFetch, deadline, finish } from './common.mjs';

// Every event name an /api stream has, and `message`: an event without a name.
const NAMES = ['start', 'delta', 'reasoning', 'tool_call', 'done', 'message'];
const result = { events: [], failures: [] };
const source = new EventSource(config.url, { fetch: countingFetch(result, 'last-event-id') });
const timer = deadline(result, () => source.close());

const record = (event) => result.events.push({ event: event.type, data: event.data, id: event.lastEventId });
for (const name of NAMES) source.addEventListener(name, record);
source.addEventListener('error', (event) => {
  if (event.data !== undefined) return record(event); // the server's `event: error`
  // A lost connection (the client reconnects) or a failed one (it stops: CLOSED).
  result.failures.push({ code: event.code ?? null, message: event.message ?? null,
                         closed: source.readyState === source.CLOSED });
  if (source.readyState === source.CLOSED) {
    clearTimeout(timer);
    finish(result);
  }
});
