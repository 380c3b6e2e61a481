// @microsoft/fetch-event-source POSTing /api/chat: on a drop it retries the same POST
// with a `last-event-id` header (the id of the last `id:` line it read), which a
// tokenrelay given the same Idempotency-Key resumes from, 204 past the end.
// Usage: node fetch-event-source.mjs '{"url", "body", "headers", "deadline_ms"}'

// The library is written for browsers: it calls window.fetch/setTimeout and listens for
// document visibility (openWhenHidden below turns the listening off; dispose still
// removes the listener).
globalThis.window ??= globalThis;
globalThis.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };

import { fetchEventSource } from '@microsoft/fetch-event-source';
import { config, countingFetch, deadline, finish } from './common.mjs';

class Stop extends Error {}
const result = { events: [], failures: [], ended: null };
const controller = new AbortController();
const timer = deadline(result, () => controller.abort());

try {
  await fetchEventSource(config.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...config.headers },
    body: JSON.stringify(config.body),
    signal: controller.signal,
    openWhenHidden: true,
    fetch: countingFetch(result, 'last-event-id'),
    async onopen(response) {
      if (response.status === 204) throw new Stop('204'); // nothing after the last id
      const type = response.headers.get('content-type') ?? '';
      if (response.status !== 200 || !type.startsWith('text/event-stream')) {
        throw new Stop(`HTTP ${response.status} ${type}`);
      }
    },
    onmessage(message) {
      result.events.push({ event: message.event, data: message.data, id: message.id });
    },
    onclose() { result.ended = 'closed'; },
    onerror(error) {
      if (error instanceof Stop) throw error;
      result.failures.push(String(error?.cause?.code ?? error?.message ?? error));
      return undefined; // retry after the server's `retry:` interval
    },
  });
} catch (error) {
  if (!(error instanceof Stop)) throw error;
  result.ended = error.message;
}
clearTimeout(timer);
finish(result);
