// A minimal useChat page, as a React app would write one against tokenrelay
// (README "Use it from React"). The URL names the chat (`?chat=`), so a reload
// resumes it; `?options=` is sent in the transport's body (the scripted model's
// options, for the tests). No JSX: Vite builds it without a React plugin.
import { createElement as h, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useChat } from '@ai-sdk/react';
import { DefaultChatTransport } from 'ai';

const params = new URLSearchParams(location.search);
const chatId = params.get('chat') ?? crypto.randomUUID();
const options = JSON.parse(params.get('options') ?? '{}');
const chatUrl = `/api/aisdk/chat/${encodeURIComponent(chatId)}`;

const transport = new DefaultChatTransport({
  api: '/api/aisdk/chat',
  body: { options },
  // What useChat({resume: true}) calls on mount: the chat's answer still generating.
  prepareReconnectToStreamRequest: () => ({ api: `${chatUrl}/stream` }),
});

function Part({ part }) {
  if (part.type === 'text' || part.type === 'reasoning') {
    return h('p', { className: part.type, 'data-state': part.state }, part.text);
  }
  return null;
}

function Chat({ stored }) {
  const { messages, sendMessage, status, error } = useChat({
    id: chatId, messages: stored, transport, resume: true,
  });
  const [input, setInput] = useState('');
  const submit = (event) => {
    event.preventDefault();
    sendMessage({ text: input });
    setInput('');
  };
  // useChat's stop() only hangs up; the server stops the model, and the stream ends.
  const stop = () => fetch(`${chatUrl}/stop`, { method: 'POST' });
  return h('main', null,
    h('output', { id: 'status', 'data-status': status }, status),
    h('ol', { id: 'messages' }, messages.map((message) => h('li', {
      key: message.id, className: message.role, 'data-id': message.id,
    }, message.parts.map((part, i) => h(Part, { key: i, part }))))),
    h('form', { onSubmit: submit },
      h('input', { id: 'prompt', value: input, onChange: (e) => setInput(e.target.value) }),
      h('button', { id: 'send', type: 'submit', disabled: status !== 'ready' }, 'Send'),
      h('button', { id: 'stop', type: 'button', onClick: stop }, 'Stop')),
    error ? h('p', { id: 'error' }, error.message) : null);
}

function App() {
  const [stored, setStored] = useState(null);
  useEffect(() => {
    // The stored chat (without the answer still generating: the resume brings it).
    fetch(chatUrl)
      .then((response) => (response.ok ? response.json() : { messages: [] }))
      .then((chat) => setStored(chat.messages));
  }, []);
  return stored === null ? h('p', { id: 'loading' }, 'Loading…') : h(Chat, { stored });
}

createRoot(document.getElementById('root')).render(h(App));
