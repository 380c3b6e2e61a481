// The openai Node SDK on /v1/chat/completions: the same request streamed and not.
// Usage: node openai.mjs '{"base_url", "model", "messages", "extra", "deadline_ms"}'
import OpenAI from 'openai';
import { config, deadline, finish } from './common.mjs';

const result = { chunks: [], complete: null };
const controller = new AbortController();
const timer = deadline(result, () => controller.abort());
const client = new OpenAI({ baseURL: config.base_url, apiKey: 'unused', maxRetries: 0 });
const request = { model: config.model, messages: config.messages, ...config.extra };

const stream = await client.chat.completions.create({ ...request, stream: true },
                                                    { signal: controller.signal });
for await (const chunk of stream) result.chunks.push(chunk);
const completion = await client.chat.completions.create(request, { signal: controller.signal });
result.complete = { text: completion.choices[0].message.content,
                    finish_reason: completion.choices[0].finish_reason };
clearTimeout(timer);
finish(result);
