"""The chat service: what the HTTP routes and the CLI call to start, read and stop
answers, and to manage conversations. It owns the running generations; FastAPI never
appears here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from tokenrelay.config import Settings
from tokenrelay.errors import InvalidRequest, NotFound, TokenrelayError
from tokenrelay.events import START
from tokenrelay.generation import Generation
from tokenrelay.messages import Message
from tokenrelay.providers import ChatRequest, Provider, Registry
from tokenrelay.store import (
    DEFAULT_OWNER, Conversation, Page, Store, StoredMessage, Turn, new_id, now,
)
from tokenrelay.store.null import NullStore
from tokenrelay.streams import StreamInfo, StreamLog, StreamNotFound

log = logging.getLogger("tokenrelay.chat")

_TITLE_LENGTH = 80
#: the texts of streaming answers are stored this often, never per token
FLUSH_INTERVAL = 0.5
#: how long a repeated Idempotency-Key waits for the first request's stream to appear
_CLAIM_WAIT = 2.0
_NOTHING_KEPT = NullStore()
_PRODUCER_LOST = ("The process generating this answer stopped (crash, kill or lost host); "
                  "the text streamed until then is kept.")


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
    idempotency_key: str | None = None
    #: False: store nothing of this exchange (the client opted out)
    persist: bool = True


@dataclass(frozen=True, slots=True)
class StartedStream:
    stream_id: str
    #: None when an Idempotency-Key repeat returned an existing stream
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Running:
    generation: Generation
    task: asyncio.Task[None]
    conversation_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class _Resolved:
    model: str
    provider: Provider
    submodel: str
    options: BaseModel


class ChatService:
    def __init__(self, settings: Settings, registry: Registry, streams: StreamLog, store: Store):
        self.settings = settings
        self.registry = registry
        self.streams = streams
        self.store = store
        self._running: dict[str, _Running] = {}
        #: answers between their limit check and their launch, per owner
        self._starting: Counter[str] = Counter()
        #: conversations whose regenerate is between its checks and its launch
        self._regenerating: set[str] = set()
        #: set on SIGTERM: running answers may finish, new ones are refused
        self.closing = False
        self._writer: asyncio.Task[None] | None = None

    # --- answers -------------------------------------------------------------------

    async def start(self, chat: ChatInput) -> StartedStream:
        """Validate, store the new messages, start the generation; returns at once,
        with the `start` event already in the stream."""
        if not chat.messages:
            raise InvalidRequest("'messages' is empty: send at least one message.",
                                 code="no_messages")
        self._check_limits(chat)
        with self._counted(chat.owner):
            return await self._start(chat)

    @contextlib.contextmanager
    def _counted(self, owner: str) -> Iterator[None]:
        """Count an answer toward its owner's streams from its limit check on, so that
        a burst cannot pass the check all at once."""
        self._starting[owner] += 1
        try:
            yield
        finally:
            self._starting[owner] -= 1
            if not self._starting[owner]:
                del self._starting[owner]

    async def _start(self, chat: ChatInput) -> StartedStream:
        resolved = await self._resolve(chat.model, chat.options)
        conversation = None
        if chat.conversation_id is not None:
            conversation = await self.conversation(chat.conversation_id, chat.owner)
        stream_id = new_id("st")
        if chat.idempotency_key is not None:
            existing = await self.store.claim_idempotency_key(
                owner=chat.owner, key=chat.idempotency_key, stream_id=stream_id)
            if existing is not None:
                await self._await_stream(existing, chat.idempotency_key)
                return StartedStream(existing)
        try:
            return await self._begin(chat, resolved, conversation, stream_id)
        except BaseException:
            if chat.idempotency_key is not None:  # a retry must be able to start it
                await self.store.release_idempotency_key(
                    owner=chat.owner, key=chat.idempotency_key, stream_id=stream_id)
            raise

    async def _begin(self, chat: ChatInput, resolved: _Resolved,
                     conversation: Conversation | None, stream_id: str) -> StartedStream:
        store = self.store if chat.persist else _NOTHING_KEPT
        new = conversation is None
        if conversation is None:
            conversation = self._new_conversation(chat, resolved.model)
        history = [Message(m.role, m.content) for m in conversation.history()]  # type: ignore[arg-type]
        turn = Turn.of(conversation, new=new, asked=[(m.role, m.content) for m in chat.messages],
                       model=resolved.model, stream_id=stream_id)
        return await self._launch(store, turn, resolved, (*history, *chat.messages), chat)

    async def regenerate(self, conversation_id: str, chat: ChatInput) -> StartedStream:
        """Answer the last user message again. The earlier answer is kept as an earlier
        version (same `reply_to`); the model sees only the newest version afterwards."""
        conversation = await self.conversation(conversation_id, chat.owner)
        last_user = next((m for m in reversed(conversation.messages) if m.role == "user"), None)
        if last_user is None:
            raise TokenrelayError("This conversation has no user message to answer.",
                                  code="nothing_to_regenerate", status=409)
        self._check_limits(chat)
        busy = [stream_id for stream_id, running in self._running.items()
                if running.conversation_id == conversation_id]
        if busy or conversation_id in self._regenerating:
            raise TokenrelayError(
                f"An answer is still streaming in this conversation (stream "
                f"{busy[0] if busy else 'starting'}): cancel it first.",
                code="stream_in_progress", status=409)
        self._regenerating.add(conversation_id)
        try:
            with self._counted(chat.owner):
                return await self._regenerate(conversation, last_user, chat)
        finally:
            self._regenerating.discard(conversation_id)

    async def _regenerate(self, conversation: Conversation, last_user: StoredMessage,
                          chat: ChatInput) -> StartedStream:
        resolved = await self._resolve(chat.model or conversation.model, chat.options)
        history: list[Message] = []
        for message in conversation.history():
            if message.created > last_user.created or (
                    message.role == "assistant" and message.reply_to == last_user.id):
                continue
            history.append(Message(message.role, message.content))  # type: ignore[arg-type]
        turn = Turn.of(conversation, new=False, asked=(), model=resolved.model,
                       stream_id=new_id("st"), reply_to=last_user.id)
        return await self._launch(self.store, turn, resolved, tuple(history), chat)

    def _check_limits(self, chat: ChatInput) -> None:
        """The configured limits (docs/security.md): refuse before anything is stored."""
        settings = self.settings
        if self.closing:
            raise TokenrelayError("The server is shutting down: retry in a moment (another "
                                  "server, or this one restarted).", code="shutting_down",
                                  status=503, retry_after=5)
        if len(chat.messages) > settings.max_messages:
            raise TokenrelayError(f"{len(chat.messages)} messages is over this server's limit "
                                  f"of {settings.max_messages}: send fewer.",
                                  code="too_many_messages")
        characters = sum(len(m.content) for m in chat.messages)
        if characters > settings.max_characters:
            raise TokenrelayError(f"The messages hold {characters:,} characters, over this "
                                  f"server's limit of {settings.max_characters:,}: send less text.",
                                  code="too_many_characters")
        if chat.max_tokens is not None and chat.max_tokens > settings.max_tokens_ceiling:
            raise TokenrelayError(f"max_tokens {chat.max_tokens} is over this server's limit of "
                                  f"{settings.max_tokens_ceiling}: ask for fewer.",
                                  code="max_tokens_too_large", status=400)
        limit = settings.max_streams
        if limit and settings.api_keys:
            mine = self._starting[chat.owner] + sum(
                1 for r in self._running.values() if r.owner == chat.owner)
            if mine >= limit:
                raise TokenrelayError(
                    f"{mine} answers are already streaming for this key (the limit is {limit}): "
                    "wait for one to end, or cancel one.", code="too_many_streams",
                    status=429, retry_after=2)

    async def _resolve(self, model: str | None, options: Mapping[str, Any]) -> _Resolved:
        name = model or self.settings.model
        await self.registry.load(name)
        provider, submodel = self.registry.resolve(name)
        return _Resolved(name, provider, submodel, self.registry.options(provider, options))

    async def _launch(self, store: Store, turn: Turn, resolved: _Resolved,
                      messages: tuple[Message, ...], chat: ChatInput) -> StartedStream:
        answer, conversation_id = turn.answer, turn.conversation.id
        stream_id = answer.stream_id
        assert stream_id is not None
        # The stream (and, with Redis, its lease) exists before the answer's row does,
        # so a reaper never finds a `streaming` answer without a live producer.
        await self.streams.create(stream_id, chat.owner)
        await self.streams.append(stream_id, START, {
            "stream_id": stream_id, "conversation_id": conversation_id,
            "message_id": answer.id, "model": resolved.model,
        })
        # The turn is written while the provider starts (issue 7: the database is not
        # on the way to the first token); the generation's own writes wait for it.
        written = asyncio.ensure_future(store.add_turn(turn))
        generation = Generation(
            stream_id=stream_id, message_id=answer.id, provider=resolved.provider,
            request=ChatRequest(
                model=resolved.submodel, messages=messages, max_tokens=chat.max_tokens,
                temperature=chat.temperature, options=resolved.options,
            ),
            streams=self.streams, store=store, abandon_after=self.settings.abandon_after,
            written=written,
        )
        self.streams.on_cancel(stream_id, generation.cancel)
        task = asyncio.create_task(generation.run(), name=f"generation {stream_id}")
        self._running[stream_id] = _Running(generation, task, conversation_id, chat.owner)
        task.add_done_callback(lambda _: self._running.pop(stream_id, None))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_texts(), name="answer texts")
        return StartedStream(stream_id, conversation_id)

    async def _write_texts(self) -> None:
        """While answers stream, write their texts so far every FLUSH_INTERVAL, all in
        one batch per store: a crash loses at most that much of any answer, and a
        thousand streaming answers cost one write, not a thousand (never one a token)."""
        while self._running:
            await asyncio.sleep(FLUSH_INTERVAL)
            batches: dict[int, tuple[Store, dict[str, str]]] = {}
            for running in list(self._running.values()):
                generation = running.generation
                if generation.store is _NOTHING_KEPT:
                    continue
                text = generation.unstored_text()
                if text is not None:
                    store = generation.store
                    batches.setdefault(id(store), (store, {}))[1][generation.message_id] = text
            for store, texts in batches.values():
                try:
                    await store.update_texts(texts)
                except Exception:
                    log.exception("could not store the texts of %d streaming answers so far",
                                  len(texts))

    async def _await_stream(self, stream_id: str, key: str) -> None:
        """A repeated key: the first request may still be between its claim and its
        stream's creation. Wait briefly for it; an expired stream is a 409."""
        deadline = asyncio.get_running_loop().time() + _CLAIM_WAIT
        while True:
            try:
                await self.streams.info(stream_id)
                return
            except StreamNotFound:
                if asyncio.get_running_loop().time() >= deadline:
                    raise TokenrelayError(
                        f"Idempotency-Key {key!r} was used for stream {stream_id}, which is "
                        "no longer available: its answer is in the conversation. Use a new "
                        "key for a new answer.", code="idempotency_key_used", status=409,
                    ) from None
                await asyncio.sleep(0.02)

    @staticmethod
    def _new_conversation(chat: ChatInput, model: str) -> Conversation:
        first_user = next((m.content for m in chat.messages if m.role == "user"), "")
        title = " ".join(first_user.split())[:_TITLE_LENGTH] or "New chat"
        created = now()
        return Conversation(id=new_id("conv"), title=title, created=created, updated=created,
                            owner=chat.owner, model=model)

    async def stream(self, stream_id: str, owner: str = DEFAULT_OWNER) -> StreamInfo:
        """The stream's state. Another owner's stream is not found, as if it did not exist."""
        try:
            info = await self.streams.info(stream_id)
            # An unknown owner (a Redis record expired) is nobody's when keys are set.
            if info.owner != owner and (info.owner is not None or self.settings.api_keys):
                raise StreamNotFound(stream_id)
        except StreamNotFound:
            raise NotFound(f"No stream {stream_id!r} (or it ended more than "
                           f"{self.settings.retention:.0f}s ago).", code="stream_not_found") from None
        return info

    async def cancel(self, stream_id: str, owner: str = DEFAULT_OWNER) -> bool:
        """Stop a generation. False if it had already finished."""
        await self.stream(stream_id, owner)
        try:
            return await self.streams.request_cancel(stream_id)
        except StreamNotFound:
            return False  # it ended and expired in between

    async def models(self) -> list[str]:
        """The models this server can serve now, the default first. In a thread: a
        provider not loaded yet imports its SDK (a second or more)."""
        available = await asyncio.to_thread(self.registry.available_models)
        default = self.settings.model
        return [default, *(m for m in available if m != default)]

    # --- conversations ---------------------------------------------------------------

    async def conversation(self, conversation_id: str, owner: str = DEFAULT_OWNER) -> Conversation:
        conversation = await self.store.get_conversation(conversation_id, owner=owner)
        if conversation is None:
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
        return conversation

    async def conversations(self, owner: str = DEFAULT_OWNER, *, limit: int = 20,
                            cursor: str | None = None) -> Page:
        try:
            return await self.store.list_conversations(owner=owner, limit=limit, cursor=cursor)
        except ValueError:
            raise InvalidRequest("Bad cursor: pass the next_cursor of the previous page.",
                                 code="invalid_cursor") from None

    async def rename(self, conversation_id: str, title: str,
                     owner: str = DEFAULT_OWNER) -> Conversation:
        renamed = await self.store.rename_conversation(conversation_id, owner=owner, title=title)
        if renamed is None:
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
        return renamed

    async def delete(self, conversation_id: str, owner: str = DEFAULT_OWNER) -> None:
        """Delete a conversation; an answer streaming in it is stopped first."""
        await self.conversation(conversation_id, owner)
        for running in list(self._running.values()):
            if running.conversation_id == conversation_id:
                running.generation.cancel()
                await asyncio.wait([running.task], timeout=5)
        if not await self.store.delete_conversation(conversation_id, owner=owner):
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")

    # --- lifecycle -------------------------------------------------------------------

    async def reap(self) -> int:
        """Mark answers whose generating process is gone as `interrupted`, with the
        text they had: at start-up (a crash, a kill -9) and, with a shared stream log,
        now and then (a lost worker or host). Returns how many."""
        reaped = 0
        for message in await self.store.streaming_messages():
            if message.stream_id in self._running:
                continue
            if message.stream_id and await self.streams.producer_alive(message.stream_id):
                continue
            orphan = None
            if message.stream_id:
                orphan = await self.streams.end_orphan(
                    message.stream_id, "producer_lost", _PRODUCER_LOST)
                if orphan is None and await self.streams.has_ended(message.stream_id):
                    continue  # it ended normally while we looked; its own write follows
            # The stream log may hold more than the last batched write to the store.
            text = max(orphan.text if orphan else "", message.content, key=len)
            await self.store.update_message(
                message.id, if_status="streaming", status="interrupted", content=text,
                error_code="producer_lost", error_message=_PRODUCER_LOST)
            reaped += 1
        if reaped:
            log.warning("marked %d answer(s) left streaming by a lost process as interrupted",
                        reaped)
        return reaped

    async def drain(self, grace: float) -> None:
        """Graceful shutdown: refuse new answers, give the running ones `grace` seconds
        to finish, then end the rest (each with its `error` event, `code: shutdown`)."""
        self.closing = True
        tasks = [running.task for running in self._running.values()]
        if tasks:
            log.info("waiting up to %.0fs for %d streaming answer(s) to finish", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        await self.end_generations()

    async def end_generations(self, timeout: float = 5.0) -> None:
        """Stop every running generation; each ends its stream with an `error` event
        (`code: shutdown`) and stores its partial answer as `interrupted`."""
        self.closing = True
        running = list(self._running.values())
        for each in running:
            each.generation.cancel("shutdown")
        if running:
            await asyncio.wait([each.task for each in running], timeout=timeout)

    async def shutdown(self) -> None:
        """End what still runs, then release providers, the stream log and the store."""
        await self.end_generations()
        if self._writer is not None:
            self._writer.cancel()
        await self.registry.aclose()
        await self.streams.close()
        await self.store.close()
