// eventsource-parser (what the AI SDK, openai-compatible libraries and many apps parse
// SSE with) reading a POST /api/chat body fed in whatever pieces the network gives.
// Usage: node eventsource-parser.mjs '{"url", "body", "deadline_ms"}'
import { createParser } from 'eventsource-parser';
import { config, countingFetch, deadline, finish } from './common.mjs';

const result = { events: [], retries: [], comments: 0, reads: 0 };
const controller = new AbortController();
const timer = deadline(result, () => controller.abort());
const parser = createParser({
  onEvent: (event) => result.events.push({ event: event.event ?? null, data: event.data, id: event.id ?? null }),
  onRetry: (ms) => result.retries.push(ms),
  onComment: () => { result.comments += 1; },
  onError: (error) => { throw error; },
});
const response = await countingFetch(result, 'last-event-id')(config.url, {
  method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify(config.body), signal: controller.signal,
});
const decoder = new TextDecoder();
for await (const bytes of response.body) {
  result.reads += 1;
  parser.feed(decoder.decode(bytes, { stream: true }));
}
parser.feed(decoder.decode());
clearTimeout(timer);
finish(result);
