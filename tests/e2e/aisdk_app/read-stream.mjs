// The AI SDK's own reading of a tokenrelay chat, outside a browser (tests/integration/
// test_aisdk.py): DefaultChatTransport sends the request, its chunk schema validates
// every chunk, and readUIMessageStream builds the UIMessage useChat would show.
// Usage: node read-stream.mjs BASE_URL CHAT_ID OPTIONS_JSON; prints the final UIMessage.
import { DefaultChatTransport, readUIMessageStream } from 'ai';

const [base, chatId, options] = process.argv.slice(2);
const transport = new DefaultChatTransport({
  api: `${base}/api/aisdk/chat`, body: { options: JSON.parse(options) },
});
const stream = await transport.sendMessages({
  chatId, trigger: 'submit-message', messageId: undefined, abortSignal: undefined,
  messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'hi' }] }],
});
let message;
for await (message of readUIMessageStream({
  stream, onError: (error) => { throw error; }, terminateOnError: true,
})) { /* the last state is the answer */ }
console.log(JSON.stringify(message));
