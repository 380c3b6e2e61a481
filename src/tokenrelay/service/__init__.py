"""The chat service: the one front that the HTTP routes, the CLI and the tests call to
start, read and stop answers and to manage conversations (DESIGN.md "Parts").

It hides how: the stream log, the store and the providers stay behind it, and each of
its jobs lives in a module of its own (limits, idempotency, history, answer texts, the
running generations, the reaper, background work). FastAPI never appears here.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tokenrelay import metrics, sse
from tokenrelay.config import Settings
from tokenrelay.errors import InvalidRequest, NotFound, TokenrelayError
from tokenrelay.events import START
from tokenrelay.generation import Generation
from tokenrelay.messages import Message
from tokenrelay.providers import ChatRequest, Provider, Registry, Tool
from tokenrelay.service import history
from tokenrelay.service.answers import AnswerTexts
from tokenrelay.service.background import Background
from tokenrelay.service.backends import make_store, make_streams
from tokenrelay.service.feed import ConversationFeed
from tokenrelay.service.generations import Generations, Running
from tokenrelay.service.idempotency import IdempotencyKeys
from tokenrelay.service.inputs import ChatInput, Reading, StartedStream
from tokenrelay.service.limits import Limits
from tokenrelay.service.reaper import Reaper
from tokenrelay.store import (
    DEFAULT_OWNER, Conversation, Page, Store, StoredMessage, Turn, new_id,
)
from tokenrelay.streams import StreamInfo, StreamLog, StreamNotFound, Tap

__all__ = ["ChatInput", "ChatService", "Conversation", "DEFAULT_OWNER", "Page", "Reading", "Tap",
           "StartedStream", "StoredMessage", "Tool"]

log = logging.getLogger("tokenrelay.service")

#: seconds each readiness check may take (Redis retries a refused connection for longer)
READY_TIMEOUT = 2.0
#: the id the readiness checks look up: no conversation or stream has it
_PROBE = "readiness-probe"


def _session_digest(token: str) -> str:
    return hashlib.sha256(b"tokenrelay session\0" + token.encode()).hexdigest()


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
        self.background = Background()
        self._generations = Generations()
        self._limits = Limits(settings, self._generations)
        self._keys = IdempotencyKeys(store, streams)
        self._texts = AnswerTexts(store, self.background, settings.flush_interval)
        self._reaper = Reaper(store, streams, self._generations)
        self.feed = ConversationFeed(settings.heartbeat)
        #: the readiness checks failing at the last look, and why (logged on change)
        self._unready: dict[str, str] = {}

    @classmethod
    def build(cls, settings: Settings, registry: Registry | None = None) -> ChatService:
        """The service with the store and stream log its settings name (not yet open)."""
        return cls(settings, registry or Registry(), make_streams(settings), make_store(settings))

    async def open(self) -> None:
        """Connect the backends, mark answers a dead process left as interrupted, and
        start the background work: the default model's warm-up, and with a shared log
        a reaper for answers of lost workers or hosts."""
        await self.store.start()
        await self.streams.start()
        await self.reap()
        self.background.spawn(self._warm(), "warm-up")
        if self.settings.redis:
            self.background.spawn(self._reaper.reap_every(self.settings.lease), "reaper",
                                  loop=True)

    async def _warm(self) -> None:
        """Load the default model in the background, so the first answer starts fast."""
        name = self.settings.model
        try:
            await self.registry.load(name)
            provider, model = self.registry.resolve(name)
            await provider.warm(model)
        except Exception:
            log.exception("could not warm up %s; it loads on first use", name)
        try:  # the other providers' SDKs too, so that a page's first model list is quick
            await asyncio.to_thread(self.registry.available_models)
        except Exception:
            log.exception("could not list the models; the list loads on first use")

    # --- answers -------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._limits.closing

    @metrics.counts_refusals
    async def start(self, chat: ChatInput) -> StartedStream:
        """Validate, store the new messages, start the generation; returns at once,
        with the `start` event already in the stream."""
        accepted = time.perf_counter()
        if not chat.messages:
            raise InvalidRequest("'messages' is empty: send at least one message.",
                                 code="no_messages")
        self._limits.check(chat)
        with self._limits.counted(chat.owner):
            resolved = await self._resolve(chat.model, chat)
            conversation = None
            if chat.conversation_id is not None:
                conversation = await self.conversation(chat.conversation_id, chat.owner)
            stream_id = new_id("st")
            if chat.idempotency_key is not None:
                existing = await self._keys.existing(chat.owner, chat.idempotency_key,
                                                     stream_id)
                if existing is not None:
                    return StartedStream(existing)
            async with self._keys.released_on_failure(chat.owner, chat.idempotency_key,
                                                      stream_id):
                return await self._begin(chat, resolved, conversation, stream_id, accepted)

    async def _begin(self, chat: ChatInput, resolved: _Resolved,
                     conversation: Conversation | None, stream_id: str,
                     accepted: float) -> StartedStream:
        new = conversation is None
        if conversation is None:
            conversation = history.new_conversation(chat, resolved.model)
        turn = Turn.of(conversation, new=new, asked=list(chat.messages), model=resolved.model,
                       stream_id=stream_id)
        messages = history.for_answer(conversation, tuple(chat.messages))
        if chat.instructions:
            messages = (Message("system", chat.instructions), *messages)
        return await self._launch(turn, resolved, messages, chat, accepted)

    @metrics.counts_refusals
    async def regenerate(self, conversation_id: str, chat: ChatInput) -> StartedStream:
        """Answer the last user message again. The earlier answer is kept as an earlier
        version (same `reply_to`); the model sees only the newest version afterwards."""
        accepted = time.perf_counter()
        conversation = await self.conversation(conversation_id, chat.owner)
        last_user = next((m for m in reversed(conversation.messages) if m.role == "user"), None)
        if last_user is None:
            raise TokenrelayError("This conversation has no user message to answer.",
                                  code="nothing_to_regenerate", status=409)
        self._limits.check(chat)
        with self._generations.regenerating(conversation_id), self._limits.counted(chat.owner):
            resolved = await self._resolve(chat.model or conversation.model, chat)
            turn = Turn.of(conversation, new=False, asked=(), model=resolved.model,
                           stream_id=new_id("st"), reply_to=last_user.id)
            messages = history.for_regenerate(conversation, last_user)
            return await self._launch(turn, resolved, messages, chat, accepted)

    async def _resolve(self, model: str | None, chat: ChatInput) -> _Resolved:
        name = model or self.settings.model
        await self.registry.load(name)
        provider, submodel = self.registry.resolve(name)
        if chat.tools:
            provider.check_tools(submodel)
        return _Resolved(name, provider, submodel, self.registry.options(provider, chat.options))

    async def _launch(self, turn: Turn, resolved: _Resolved, messages: tuple[Message, ...],
                      chat: ChatInput, accepted: float) -> StartedStream:
        answer, conversation = turn.answer, turn.conversation
        stream_id = answer.stream_id
        assert stream_id is not None
        # Fitted to the model's context before anything exists: a message that cannot
        # fit is a 400 (context_length_exceeded), never a stream that fails.
        fitted = await resolved.provider.fit(ChatRequest(
            model=resolved.submodel, messages=messages, max_tokens=chat.max_tokens,
            temperature=chat.temperature, options=resolved.options, tools=chat.tools,
            tool_choice=chat.tool_choice, parallel_tool_calls=chat.parallel_tool_calls,
            reasoning_effort=chat.reasoning_effort,
        ))
        # The stream (and, with Redis, its lease) exists before the answer's row does,
        # so a reaper never finds a `streaming` answer without a live producer.
        await self.streams.create(stream_id, chat.owner)
        await self.streams.append(stream_id, START, {
            "stream_id": stream_id, "conversation_id": conversation.id,
            "message_id": answer.id, "model": resolved.model, "title": conversation.title,
            # in the log, so that every reader of the stream tells the same time
            "created": int(time.time()),
        })
        # The turn is written while the provider starts (issue 7: the database is not
        # on the way to the first token); the generation's own writes wait for it.
        written = asyncio.ensure_future(self.store.add_turn(turn)) if chat.persist else None
        generation = Generation(
            stream_id=stream_id, message_id=answer.id, provider=resolved.provider,
            request=fitted.request, dropped=fitted.dropped,
            streams=self.streams, store=self.store if chat.persist else None,
            abandon_after=self.settings.abandon_after, written=written,
            keep=self.background.keep,
            provider_name=resolved.model.partition("/")[0], accepted=accepted,
        )
        self.streams.on_cancel(stream_id, generation.cancel)
        task = self.background.spawn(generation.run(), f"generation {stream_id}")
        self._generations.add(stream_id, Running(generation, task, conversation.id, chat.owner))
        announced = None
        if chat.persist:
            self._texts.track(generation)
            announced = self._announce(turn, chat.owner, written)
        # One callback for all that follows a generation's end (each one more costs a
        # closure per open stream: issue 16).
        task.add_done_callback(functools.partial(self._ended, generation, announced))
        return StartedStream(stream_id, conversation.id)

    def _ended(self, generation: Generation, announced: tuple[str, dict[str, str]] | None,
               _task: asyncio.Task[None]) -> None:
        self._generations.ended(generation.stream_id)
        self._texts.untrack(generation)
        if announced is not None:
            owner, data = announced
            self.feed.publish(owner, "answered", data)

    def _announce(self, turn: Turn, owner: str, written: asyncio.Future[None] | None,
                  ) -> tuple[str, dict[str, str]]:
        """Tell the owner's open pages once the turn is stored (a page that reads the
        conversation then finds it); returns what `_ended` tells them when its answer
        has ended."""
        conversation, stream_id = turn.conversation, turn.answer.stream_id
        data = {"conversation_id": conversation.id, "title": conversation.title,
                "stream_id": stream_id}

        def stored(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and future.exception() is None:
                self.feed.publish(owner, "created" if turn.new else "turn", data)

        if written is not None:
            written.add_done_callback(stored)
        return owner, data

    def changes(self, owner: str, after: int | None) -> Reading:
        """The owner's conversation changes, from after `after` (None: from now)."""
        return Reading(self.feed.read(owner, after), sse.retry(self.settings.retry_ms))

    # --- streams ---------------------------------------------------------------------

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

    def follow(self, started: StartedStream) -> Reading:
        """A reader of a stream this request just started (or its Idempotency-Key found)."""
        return self._reading(started.stream_id, 0)

    async def read(self, stream_id: str, after: int = 0,
                   owner: str = DEFAULT_OWNER) -> Reading | None:
        """A reader from after event `after`; None when the stream has ended and has
        nothing after it (an EventSource is then told to stop reconnecting)."""
        info = await self.stream(stream_id, owner)
        if info.finished and after >= info.last_seq:
            return None
        if after > 0:
            metrics.resumed()
        return self._reading(stream_id, after)

    def _reading(self, stream_id: str, after: int) -> Reading:
        """A reader from after `after`, counted as a disconnect if it leaves while the
        stream's generation still runs here (with --redis, a reader of a stream that
        another process generates is not counted: that would cost a round trip); with
        its tap, for the body writer to bind (streams.Tap)."""

        async def left_early() -> bool:
            # The generation's task ends in the step that appends its terminal event,
            # and leaves `_generations` in a callback just after; one loop turn here
            # orders this check after it, so a reader that read to the end never counts.
            await asyncio.sleep(0)
            return stream_id in self._generations

        tap = Tap()
        chunks = metrics.CountedReader(self.streams.read(stream_id, after, tap), left_early)
        return Reading(chunks, sse.retry(self.settings.retry_ms), tap)

    async def cancel(self, stream_id: str, owner: str = DEFAULT_OWNER) -> bool:
        """Stop a generation. False if it had already finished."""
        await self.stream(stream_id, owner)
        try:
            cancelled = await self.streams.request_cancel(stream_id)
        except StreamNotFound:
            return False  # it ended and expired in between
        if cancelled:
            metrics.cancelled()
        return cancelled

    def stop_if_unread(self, stream_id: str) -> None:
        """A reader that stands for the asker hung up (an OpenAI client: that is how
        their API behaves): stop the generation unless another reader follows it."""
        self.background.spawn(self._stop_if_unread(stream_id), f"stop {stream_id} if unread")

    async def _stop_if_unread(self, stream_id: str) -> None:
        try:
            if (await self.streams.info(stream_id)).readers == 0:
                await self.streams.request_cancel(stream_id)
        except StreamNotFound:
            pass  # it has ended, and may be gone

    # --- models ----------------------------------------------------------------------

    @property
    def default_model(self) -> str:
        return self.settings.model

    async def models(self) -> list[str]:
        """The models this server can serve now, the default first. In a thread: a
        provider not loaded yet imports its SDK (a second or more)."""
        available = await asyncio.to_thread(self.registry.available_models)
        default = self.settings.model
        return [default, *(m for m in available if m != default)]

    def labels(self, models: list[str]) -> dict[str, str]:
        """A readable name for each of `models` ("SmolLM2 135M · local CPU")."""
        return {model: self.registry.label(model) for model in models}

    async def options_for(self, model: str, options: Mapping[str, Any], *,
                          optional: Collection[str] = ()) -> dict[str, Any]:
        """`options` for `model`, less those named in `optional` that its provider has
        no option for or that are None (OpenAI's sampling parameters pass to the
        providers that have them). Raises InvalidRequest for an unknown model."""
        await self.registry.load(model)  # an SDK imported in a thread, not on the loop
        provider, _ = self.registry.resolve(model)
        known = self.registry.option_names(provider)
        return {k: v for k, v in options.items()
                if k not in optional or (k in known and v is not None)}

    # --- sign-in sessions --------------------------------------------------------------

    async def open_session(self, owner: str) -> str:
        """A new session for `owner`: a random token (the cookie's value); the store
        keeps only its digest, where every host sees it."""
        token = secrets.token_urlsafe(32)
        await self.store.add_session(digest=_session_digest(token), owner=owner)
        return token

    async def session_owner(self, token: str) -> str | None:
        return await self.store.session_owner(_session_digest(token))

    async def close_session(self, token: str) -> None:
        await self.store.delete_session(_session_digest(token))

    # --- conversations ---------------------------------------------------------------

    async def conversation(self, conversation_id: str, owner: str = DEFAULT_OWNER) -> Conversation:
        await self._turns_written(conversation_id)
        conversation = await self.store.get_conversation(conversation_id, owner=owner)
        if conversation is None:
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
        return conversation

    async def chat(self, chat_id: str, owner: str = DEFAULT_OWNER) -> Conversation | None:
        """The owner's conversation a client named `chat_id` (ChatInput.chat_id), or None."""
        return await self.store.find_conversation(owner=owner, chat_id=chat_id)

    async def active_stream(self, conversation_id: str,
                            owner: str = DEFAULT_OWNER) -> str | None:
        """The stream of the answer still generating in a conversation, or None. Asked
        of this process's generations first (the answer's row may not be written yet),
        then of the store (with a shared log, another host may be generating it)."""
        conversation = await self.conversation(conversation_id, owner)
        running = self._generations.in_conversation(conversation_id)
        streaming = [r.generation.stream_id for r in running] + [
            m.stream_id for m in reversed(conversation.messages)
            if m.role == "assistant" and m.status == "streaming" and m.stream_id]
        for stream_id in streaming:
            try:
                if not (await self.streams.info(stream_id)).finished:
                    return stream_id
            except StreamNotFound:
                continue  # its producer died; the reaper marks it interrupted
        return None

    async def _turns_written(self, conversation_id: str) -> None:
        """The turn of an answer just started is written while its provider starts
        (issue 7); a read or delete of its conversation right after `start` waits for
        that write instead of finding nothing (a 404 seen under load)."""
        for running in self._generations.in_conversation(conversation_id):
            await running.generation.turn_written()

    async def conversations(self, owner: str = DEFAULT_OWNER, *, limit: int = 20,
                            cursor: str | None = None) -> Page:
        try:
            return await self.store.list_conversations(owner=owner, limit=limit, cursor=cursor)
        except ValueError:
            raise InvalidRequest("Bad cursor: pass the next_cursor of the previous page.",
                                 code="invalid_cursor") from None

    async def rename(self, conversation_id: str, title: str,
                     owner: str = DEFAULT_OWNER) -> Conversation:
        await self._turns_written(conversation_id)
        renamed = await self.store.rename_conversation(conversation_id, owner=owner, title=title)
        if renamed is None:
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
        self.feed.publish(owner, "renamed", {"conversation_id": conversation_id,
                                             "title": renamed.title})
        return renamed

    async def delete(self, conversation_id: str, owner: str = DEFAULT_OWNER) -> None:
        """Delete a conversation; an answer streaming in it is stopped first."""
        await self.conversation(conversation_id, owner)  # (waits for its turn's write)
        await self._generations.stop(self._generations.in_conversation(conversation_id),
                                     "cancelled", timeout=5)
        if not await self.store.delete_conversation(conversation_id, owner=owner):
            raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
        self.feed.publish(owner, "deleted", {"conversation_id": conversation_id})

    # --- operations ------------------------------------------------------------------

    async def readiness(self) -> dict[str, str | None]:
        """Whether this process can take answers now (`GET /readyz`): each check, None
        when it passed, else a short reason (the full one goes to the log, once, when
        the check starts failing). The database and, with --redis, Redis must each
        answer a trivial read within READY_TIMEOUT seconds, and the server must not be
        draining (a load balancer should send new requests elsewhere by then)."""
        probes = {"database": self.store.get_conversation(_PROBE, owner=_PROBE)}
        if self.settings.redis:
            probes["redis"] = self.streams.info(_PROBE)
        results = await asyncio.gather(*(self._probe(p) for p in probes.values()))
        failures = {name: why for name, why in zip(probes, results, strict=True) if why}
        if self.closing:
            failures["accepting"] = "the server is shutting down"
        self._log_readiness(failures)
        return {name: (None if name not in failures else failures[name].split(":", 1)[0])
                for name in (*probes, "accepting")}

    @staticmethod
    async def _probe(check: Awaitable[object]) -> str | None:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await check
        except StreamNotFound:
            return None  # Redis answered: no such stream
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT:g}s"
        except Exception as exc:  # whatever the driver raises: the check failed
            first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            return f"{type(exc).__name__}: {first_line}"
        return None

    def _log_readiness(self, failures: dict[str, str]) -> None:
        for name, why in failures.items():
            if name not in self._unready:
                log.warning("not ready: %s failed (%s)", name, why)
        for name in self._unready.keys() - failures.keys():
            log.info("ready again: %s answers", name)
        self._unready = failures

    async def metrics_exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The Prometheus metrics (tokenrelay/metrics.py) and their content type, in
        the format `accept` asks for; in a thread, since with workers they are files."""
        return await asyncio.to_thread(metrics.exposition, accept)

    # --- lifecycle -------------------------------------------------------------------

    async def reap(self) -> int:
        """Mark answers whose generating process is gone as `interrupted`, with the
        text they had (at start-up, and now and then with a shared log). How many."""
        return await self._reaper.reap()

    def begin_drain(self, grace: float) -> None:
        """On the first SIGTERM: the drain, in the background (see `drain`)."""
        self.background.spawn(self.drain(grace), "drain")

    def end_now(self) -> None:
        """On a second SIGTERM: end every running answer at once."""
        self.background.spawn(self.end_generations(), "end generations")

    async def drain(self, grace: float) -> None:
        """Graceful shutdown: refuse new answers, give the running ones `grace` seconds
        to finish, then end the rest (each with its `error` event, `code: shutdown`)."""
        self._limits.closing = True
        tasks = [running.task for running in self._generations.all()]
        if tasks:
            log.info("waiting up to %.0fs for %d streaming answer(s) to finish", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        await self.end_generations()

    async def end_generations(self, timeout: float = 5.0) -> None:
        """Stop every running generation; each ends its stream with an `error` event
        (`code: shutdown`) and stores its partial answer as `interrupted`."""
        self._limits.closing = True
        await self._generations.stop(self._generations.all(), "shutdown", timeout)

    async def shutdown(self) -> None:
        """End what still runs, let the last writes finish, then release providers,
        the stream log and the store."""
        await self.end_generations()
        await self.background.close(timeout=5.0)
        await self.registry.aclose()
        await self.streams.close()
        await self.store.close()
        metrics.process_ended()
