"""The chat service: what the HTTP routes and the CLI call to start, read and stop
answers. It owns the running generations; FastAPI never appears here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenrelay.config import Settings
from tokenrelay.errors import InvalidRequest, NotFound
from tokenrelay.events import START
from tokenrelay.generation import Generation
from tokenrelay.providers import ChatRequest, Message, Registry
from tokenrelay.store import DEFAULT_OWNER, Conversation, Store, new_id
from tokenrelay.streams import StreamLog, StreamNotFound

log = logging.getLogger("tokenrelay.chat")

_TITLE_LENGTH = 80


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A request to answer: new `messages`, appended to the stored history when
    `conversation_id` names an existing conversation."""

    messages: Sequence[Message]
    model: str | None = None
    conversation_id: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    owner: str = DEFAULT_OWNER


@dataclass(frozen=True, slots=True)
class StartedStream:
    stream_id: str
    conversation_id: str
    message_id: str
    model: str


class ChatService:
    def __init__(self, settings: Settings, registry: Registry, streams: StreamLog, store: Store):
        self.settings = settings
        self.registry = registry
        self.streams = streams
        self.store = store
        self._running: dict[str, tuple[Generation, asyncio.Task[None]]] = {}

    async def start(self, chat: ChatInput) -> StartedStream:
        """Validate, store the new messages, start the generation; returns at once,
        with the `start` event already in the stream."""
        if not chat.messages:
            raise InvalidRequest("'messages' is empty: send at least one message.",
                                 code="no_messages")
        model = chat.model or self.settings.model
        provider, submodel = self.registry.resolve(model)
        options = self.registry.options(provider, chat.options)
        conversation = await self._conversation(chat, model)
        history = [Message(m.role, m.content) for m in conversation.messages  # type: ignore[arg-type]
                   if m.content and m.status != "streaming"]
        for message in chat.messages:
            await self.store.add_message(conversation.id, role=message.role, content=message.content)

        stream_id = new_id("st")
        answer = await self.store.add_message(
            conversation.id, role="assistant", content="", model=model, status="streaming",
            stream_id=stream_id,
        )
        await self.streams.create(stream_id)
        started = StartedStream(stream_id, conversation.id, answer.id, model)
        await self.streams.append(stream_id, START, {
            "stream_id": stream_id, "conversation_id": conversation.id,
            "message_id": answer.id, "model": model,
        })
        generation = Generation(
            stream_id=stream_id, message_id=answer.id, provider=provider,
            request=ChatRequest(
                model=submodel, messages=(*history, *chat.messages),
                max_tokens=chat.max_tokens, temperature=chat.temperature, options=options,
            ),
            streams=self.streams, store=self.store, abandon_after=self.settings.abandon_after,
        )
        self.streams.on_cancel(stream_id, generation.cancel)
        task = asyncio.create_task(generation.run(), name=f"generation {stream_id}")
        self._running[stream_id] = (generation, task)
        task.add_done_callback(lambda _: self._running.pop(stream_id, None))
        return started

    async def _conversation(self, chat: ChatInput, model: str) -> Conversation:
        if chat.conversation_id is not None:
            conversation = await self.store.get_conversation(chat.conversation_id, owner=chat.owner)
            if conversation is None:
                raise NotFound(f"No conversation {chat.conversation_id!r}.",
                               code="conversation_not_found")
            return conversation
        first_user = next((m.content for m in chat.messages if m.role == "user"), "")
        title = " ".join(first_user.split())[:_TITLE_LENGTH] or "New chat"
        return await self.store.create_conversation(title=title, model=model, owner=chat.owner)

    async def cancel(self, stream_id: str) -> bool:
        """Stop a generation. False if it had already finished."""
        try:
            return await self.streams.request_cancel(stream_id)
        except StreamNotFound:
            raise NotFound(f"No stream {stream_id!r} (or it ended more than "
                           f"{self.settings.retention:.0f}s ago).", code="stream_not_found") from None

    async def conversation(self, conversation_id: str, owner: str = DEFAULT_OWNER) -> Conversation:
        conversation = await self.store.get_conversation(conversation_id, owner=owner)
        if conversation is None:
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
        return conversation

    async def end_generations(self, timeout: float = 5.0) -> None:
        """Stop every running generation; each ends its stream with an `error` event
        (`code: shutdown`) and stores its partial answer as `interrupted`."""
        running = list(self._running.values())
        for generation, _ in running:
            generation.cancel("shutdown")
        if running:
            await asyncio.wait([task for _, task in running], timeout=timeout)

    async def shutdown(self) -> None:
        """End what still runs, then release providers, the stream log and the store."""
        await self.end_generations()
        await self.registry.aclose()
        await self.streams.close()
        await self.store.close()
