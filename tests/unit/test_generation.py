"""The generation, run by the chat service with the in-process log and store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import pytest

from tokenrelay import generation
from tokenrelay.service import ChatInput, ChatService
from tokenrelay.config import Settings
from tokenrelay.events import Chunk, Finish, TextDelta
from tokenrelay.providers import ChatRequest, Message, Provider, Registry
from tokenrelay.sse import Decoder
from tokenrelay.store import StoredMessage, Turn
from tokenrelay.store.memory import MemoryStore
from tokenrelay.streams.memory import MemoryStreamLog


class Burst(Provider):
    """Yields many deltas without ever suspending, and records its own cleanup."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        try:
            for n in range(1_000_000):
                yield TextDelta(f"{n} ")
            yield Finish("stop")
        finally:
            self.closed.set()


class Broken(Provider):
    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        yield TextDelta("partial ")
        await asyncio.sleep(0)
        raise KeyError("bug")


@pytest.fixture
def burst() -> Burst:
    return Burst()


@pytest.fixture
async def service(burst: Burst) -> AsyncIterator[ChatService]:
    registry = Registry({"burst": lambda: burst, "broken": Broken})
    chat = ChatService(Settings(model="burst"), registry, MemoryStreamLog(), MemoryStore())
    yield chat
    await chat.shutdown()


async def _events(service: ChatService, stream_id: str) -> list[tuple[str, dict]]:
    decoder = Decoder()
    out = []
    async for chunk in service.streams.read(stream_id):
        out += [(e.event, json.loads(e.data)) for e in decoder.feed(chunk)]
    return out


async def test_a_cancel_between_deltas_still_closes_the_provider(
    service: ChatService, burst: Burst
) -> None:
    started = await service.start(ChatInput([Message("user", "go")]))
    reader = service.streams.read(started.stream_id)
    while b"event: delta" not in await reader.__anext__():
        pass  # the first delta has gone out: the pump is between deltas
    await reader.aclose()
    assert not burst.closed.is_set()
    assert await service.cancel(started.stream_id) is True
    await asyncio.wait_for(burst.closed.wait(), 1)
    events = await _events(service, started.stream_id)
    assert events[-1][0] == "done" and events[-1][1]["finish_reason"] == "cancelled"


async def test_a_burst_does_not_starve_other_streams(service: ChatService) -> None:
    """The pump gives the loop back at least every ~1 ms, so a second request is
    served while the first is still bursting."""
    first = await service.start(ChatInput([Message("user", "one")]))
    second = await service.start(ChatInput([Message("user", "two")], options={}))
    events = service.streams.read(second.stream_id)
    assert b"event: start" in await asyncio.wait_for(events.__anext__(), 1)
    assert b"event: delta" in await asyncio.wait_for(events.__anext__(), 1)
    await events.aclose()
    info = await service.streams.info(first.stream_id)
    assert not info.finished, "the first stream is still running"
    await service.cancel(first.stream_id)
    await service.cancel(second.stream_id)


async def test_a_provider_bug_ends_the_stream_with_an_error_and_keeps_the_text(
    service: ChatService,
) -> None:
    started = await service.start(ChatInput([Message("user", "x")], model="broken"))
    events = await _events(service, started.stream_id)
    assert [name for name, _ in events] == ["start", "delta", "error"]
    assert events[-1][1]["code"] == "internal_error"
    conversation = await service.conversation(started.conversation_id)
    answer = conversation.messages[-1]
    assert (answer.status, answer.content, answer.error_code) == ("error", "partial ", "internal_error")


async def _eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    """Poll `condition` until it holds (a deadline, never a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def _answer(service: ChatService, conversation_id: str | None) -> StoredMessage | None:
    """The conversation's last message as stored, None before its turn is written."""
    conversation = await service.store.get_conversation(conversation_id or "", owner="default")
    return conversation.messages[-1] if conversation else None


async def test_the_stored_text_is_flushed_while_it_streams(service: ChatService) -> None:
    started = await service.start(ChatInput([Message("user", "x")]))

    async def stored_while_streaming() -> bool:
        answer = await _answer(service, started.conversation_id)
        if answer is None:
            return False  # the turn's row is written while the provider starts
        assert answer.status == "streaming"  # the burst goes on until cancelled
        return answer.content.startswith("0 1 2 3 ")

    await _eventually(stored_while_streaming)
    await service.cancel(started.stream_id)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.updates = 0
        self.batches: list[int] = []

    async def update_message(self, message_id: str, **changes: object) -> None:
        self.updates += 1
        await super().update_message(message_id, **changes)  # type: ignore[arg-type]

    async def update_texts(self, texts: Mapping[str, str],
                           reasoning: Mapping[str, str] | None = None) -> None:
        self.batches.append(len(texts))
        await super().update_texts(texts, reasoning)


async def test_the_answer_is_stored_at_its_end_never_per_token() -> None:
    from tokenrelay.providers.scripted import ScriptedProvider

    store = CountingStore()
    # No batched write falls inside this answer: what is written is the final write.
    service = ChatService(Settings(model="scripted", flush_interval=3600),
                          Registry({"scripted": ScriptedProvider}), MemoryStreamLog(), store)
    text = "word " * 100
    started = await service.start(ChatInput([Message("user", "x")],
                                            options={"text": text, "delay_ms": 1}))
    events = await _events(service, started.stream_id)
    assert [name for name, _ in events].count("delta") == 100
    assert store.updates == 1 and store.batches == []
    conversation = await service.conversation(started.conversation_id)
    assert conversation.messages[-1].content == text
    await service.shutdown()


async def test_the_texts_of_many_streaming_answers_are_stored_in_one_batch() -> None:
    from tokenrelay.providers.scripted import ScriptedProvider

    store = CountingStore()
    service = ChatService(Settings(model="scripted", flush_interval=0.05),
                          Registry({"scripted": ScriptedProvider}), MemoryStreamLog(), store)
    options = {"text": "word " * 400, "delay_ms": 5}
    started = [await service.start(ChatInput([Message("user", f"q{n}")], options=options))
               for n in range(20)]

    async def all_stored_while_streaming() -> bool:
        answers = [await _answer(service, s.conversation_id) for s in started]
        return all(a is not None and a.status == "streaming"
                   and a.content.startswith("word word ") for a in answers)

    await _eventually(all_stored_while_streaming)
    # 20 answers growing at once: their texts went out together, not one write each.
    assert max(store.batches) > 1, store.batches
    assert sum(store.batches) > len(store.batches), store.batches
    for stream in started:
        assert (await _events(service, stream.stream_id))[-1][0] == "done"
    for stream in started:  # a batch that lands late never undoes the final write
        answer = (await service.conversation(stream.conversation_id)).messages[-1]
        assert (answer.status, answer.content) == ("complete", "word " * 400)
    await service.shutdown()


class _TurnStore(MemoryStore):
    """The turn's write fails, or takes its time, after `delay` seconds."""

    def __init__(self, delay: float, fail: bool) -> None:
        super().__init__()
        self.delay, self.fail = delay, fail

    async def add_turn(self, turn: Turn) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError("database gone")
        await super().add_turn(turn)


def _scripted(store: MemoryStore) -> ChatService:
    from tokenrelay.providers.scripted import ScriptedProvider

    return ChatService(Settings(model="scripted"), Registry({"scripted": ScriptedProvider}),
                       MemoryStreamLog(), store)


async def test_an_answer_whose_question_was_not_stored_ends_with_an_error() -> None:
    service = _scripted(_TurnStore(0.05, fail=True))
    started = await service.start(ChatInput([Message("user", "x")], options={"text": "fast"}))
    events = await _events(service, started.stream_id)
    assert events[-1] == ("error", {"code": "database_unavailable", "length": 4,
                                    "message": events[-1][1]["message"]})
    await service.shutdown()


async def test_a_slow_database_never_leaves_an_answer_streaming(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generation, "STORE_TIMEOUT", 0.1)
    store = _TurnStore(0.4, fail=False)
    service = _scripted(store)
    started = await service.start(ChatInput([Message("user", "x")], options={"text": "a b"}))
    events = await _events(service, started.stream_id)
    assert events[-1][0] == "done"  # announced without waiting for the database
    answer = None

    async def stored() -> bool:
        nonlocal answer
        conversation = await store.get_conversation(started.conversation_id or "",
                                                    owner="default")
        answer = conversation.messages[-1] if conversation else None
        return answer is not None and answer.status != "streaming"

    await _eventually(stored)
    assert answer is not None and (answer.status, answer.content) == ("complete", "a b")
    await service.shutdown()


class _SlowLog(MemoryStreamLog):
    """Creating a stream takes a round trip, as with Redis."""

    async def create(self, stream_id: str, owner: str | None = None) -> None:
        await asyncio.sleep(0.05)
        await super().create(stream_id, owner)


async def test_two_regenerates_at_once_start_one_answer() -> None:
    from tokenrelay.errors import TokenrelayError
    from tokenrelay.providers.scripted import ScriptedProvider

    service = ChatService(Settings(model="scripted"), Registry({"scripted": ScriptedProvider}),
                          _SlowLog(), MemoryStore())
    first = await service.start(ChatInput([Message("user", "x")], options={"text": "a"}))
    await _events(service, first.stream_id)
    assert first.conversation_id is not None
    results = await asyncio.gather(
        *(service.regenerate(first.conversation_id, ChatInput(())) for _ in range(2)),
        return_exceptions=True)
    refused = [r for r in results if isinstance(r, TokenrelayError)]
    assert len(refused) == 1 and refused[0].code == "stream_in_progress"
    await service.shutdown()


async def test_regenerates_count_toward_the_per_key_stream_limit() -> None:
    from tokenrelay.errors import TokenrelayError
    from tokenrelay.providers.scripted import ScriptedProvider

    settings = Settings(model="scripted", api_keys=("k",), max_streams=2)
    service = ChatService(settings, Registry({"scripted": ScriptedProvider}), _SlowLog(),
                          MemoryStore())
    ids = []
    for n in range(3):
        started = await service.start(ChatInput([Message("user", f"q{n}")], owner="o",
                                                options={"text": "a"}))
        await _events(service, started.stream_id)
        ids.append(started.conversation_id)
    slow = ChatInput((), owner="o", options={"text": "a " * 50, "delay_ms": 20})
    results = await asyncio.gather(*(service.regenerate(c, slow) for c in ids),
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, TokenrelayError)]
    assert [r.code for r in refused] == ["too_many_streams"]
    await service.end_generations()
    await service.shutdown()


async def test_the_conversation_of_an_answer_just_started_is_found_while_its_write_lags(
) -> None:
    """The turn is written while the provider starts; a read, rename or delete right
    after `start` waits for that write instead of answering 404 (seen under load)."""
    service = _scripted(_TurnStore(0.3, fail=False))
    started = await service.start(ChatInput([Message("user", "x")],
                                            options={"text": "a " * 200, "delay_ms": 5}))
    assert started.conversation_id is not None
    found = await service.conversation(started.conversation_id)
    assert found.messages[0].content == "x"
    renamed = await service.rename(started.conversation_id, "Renamed")
    assert renamed.title == "Renamed"
    await service.delete(started.conversation_id)
    await service.shutdown()
