"""The in-process stream log: readers, resume, coalescing, cancel, retention."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tokenrelay import sse
from tokenrelay.sse import Decoder
from tokenrelay.streams import StreamNotFound, Tap
from tokenrelay.streams.memory import MemoryStreamLog


def _decode(chunks: list[bytes]) -> list[tuple[str, str, str]]:
    decoder = Decoder()
    return [(e.id, e.event, e.data) for chunk in chunks for e in decoder.feed(chunk)]


async def _collect(log: MemoryStreamLog, stream_id: str, after: int = 0) -> list[bytes]:
    return [chunk async for chunk in log.read(stream_id, after)]


async def _filled(count: int, *, finish: bool = True) -> MemoryStreamLog:
    log = MemoryStreamLog()
    await log.create("s")
    for n in range(count):
        await log.append("s", "delta", {"text": f"t{n} "})
    if finish:
        await log.append("s", "done", {"finish_reason": "stop"})
    return log


async def test_sequence_numbers_start_at_one_and_are_the_sse_ids() -> None:
    log = await _filled(3)
    events = _decode(await _collect(log, "s"))
    assert [e[0] for e in events] == ["1", "2", "3", "4"]
    assert [e[1] for e in events] == ["delta", "delta", "delta", "done"]
    assert events[0][2] == '{"text":"t0 "}'
    await log.close()


async def test_resume_from_every_sequence_number_gives_exactly_the_rest() -> None:
    log = await _filled(20)
    everything = _decode(await _collect(log, "s"))
    for after in range(len(everything) + 1):
        assert _decode(await _collect(log, "s", after)) == everything[after:]
    await log.close()


async def test_a_reader_behind_gets_its_pending_events_in_one_chunk() -> None:
    log = await _filled(50)
    chunks = await _collect(log, "s")
    assert len(chunks) == 1, "51 pending events are one write, not 51"
    assert len(_decode(chunks)) == 51
    await log.close()


async def test_many_readers_see_the_same_events_while_it_is_written() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    readers = [asyncio.create_task(_collect(log, "s")) for _ in range(10)]
    for n in range(100):
        await log.append("s", "delta", {"text": str(n)})
        if n % 7 == 0:
            await asyncio.sleep(0)
    await log.append("s", "done", {})
    results = [_decode(chunks) for chunks in await asyncio.gather(*readers)]
    assert all(result == results[0] for result in results)
    assert [e[0] for e in results[0]] == [str(n) for n in range(1, 102)]
    await log.close()


async def test_each_event_is_encoded_once_for_every_reader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    encodes = 0
    encode = sse.encode_json

    def counting(*args: Any) -> bytes:
        nonlocal encodes
        encodes += 1
        return encode(*args)

    monkeypatch.setattr(sse, "encode_json", counting)
    log = await _filled(3)
    readers = [await _collect(log, "s", 0) for _ in range(3)]
    assert encodes == 4  # three deltas and `done`, however many read them
    assert readers[0] == readers[1] == readers[2]
    rest = _decode(await _collect(log, "s", 2))
    assert [(i, name) for i, name, _ in rest] == [("3", "delta"), ("4", "done")]
    assert rest == _decode(readers[0])[2:]
    await log.close()


async def test_a_slow_reader_does_not_slow_a_fast_one() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    fast_done = asyncio.Event()

    async def fast() -> int:
        count = 0
        async for chunk in log.read("s"):
            count += len(_decode([chunk]))
        fast_done.set()
        return count

    async def slow() -> int:
        count = 0
        async for chunk in log.read("s"):
            await asyncio.sleep(0.2)  # a reader stuck on a slow socket
            count += len(_decode([chunk]))
        return count

    fast_task, slow_task = asyncio.create_task(fast()), asyncio.create_task(slow())
    for n in range(200):
        await log.append("s", "delta", {"text": str(n)})
        await asyncio.sleep(0)
    await log.append("s", "done", {})
    await asyncio.wait_for(fast_done.wait(), 0.1)
    assert not slow_task.done(), "the slow reader is still behind"
    assert await fast_task == 201
    assert await slow_task == 201, "the slow reader gets every event, none dropped"
    await log.close()


async def test_a_waiting_reader_gets_a_ping_when_nothing_happens() -> None:
    log = MemoryStreamLog(heartbeat=0.05)
    await log.create("s")
    reader = log.read("s")
    assert await asyncio.wait_for(reader.__anext__(), 1) == b": ping\n"
    await log.append("s", "delta", {"text": "x"})
    assert b"event: delta" in await asyncio.wait_for(reader.__anext__(), 1)
    await reader.aclose()
    await log.close()


async def test_cancel_reaches_the_producer_once_and_not_after_the_end() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    calls = []
    log.on_cancel("s", lambda: calls.append("stop"))
    assert await log.request_cancel("s") is True
    assert calls == ["stop"]
    await log.append("s", "done", {"finish_reason": "cancelled"})
    assert await log.request_cancel("s") is False
    assert calls == ["stop"]
    with pytest.raises(StreamNotFound):
        await log.request_cancel("other")
    await log.close()


async def test_finished_streams_expire_after_retention_but_running_ones_do_not() -> None:
    log = MemoryStreamLog(retention=0.1)
    await log.create("done")
    await log.create("running")
    await log.append("done", "done", {})
    await log.append("running", "delta", {"text": "x"})
    assert (await log.info("done")).finished
    await asyncio.sleep(0.3)
    with pytest.raises(StreamNotFound):
        await log.info("done")
    assert (await log.info("running")).last_seq == 1
    await log.close()


async def test_readers_are_counted_for_the_abandon_rule() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    assert (await log.info("s")).unread_since is not None
    reader = log.read("s")
    task = asyncio.create_task(reader.__anext__())
    await asyncio.sleep(0.01)
    info = await log.info("s")
    assert info.readers == 1 and info.unread_since is None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await reader.aclose()
    info = await log.info("s")
    assert info.readers == 0 and info.unread_since is not None
    await log.close()


async def test_nothing_can_be_appended_after_the_end() -> None:
    log = await _filled(1)
    with pytest.raises(ValueError):
        await log.append("s", "delta", {"text": "late"})
    await log.close()


async def test_in_one_process_a_stream_has_its_producer_until_it_ends() -> None:
    log = await _filled(1, finish=False)
    assert await log.producer_alive("s") and not await log.has_ended("s")
    assert await log.end_orphan("s", "producer_lost", "gone") is None, "nothing to end here"
    await log.append("s", "done", {"finish_reason": "stop"})
    assert not await log.producer_alive("s") and await log.has_ended("s")
    assert not await log.producer_alive("other") and not await log.has_ended("other")
    await log.close()


# --- writing through a caught-up reader's tap (issue 16) ------------------------------------


class _Connection:
    """A reader's connection for its tap: `full` makes the next write wait, as a
    transport whose buffer is full does; `settle` then finishes it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.pending: bytes | None = None
        self.full = False
        self.settled = 0

    def write(self, chunk: bytes) -> bool:
        if self.full:
            self.pending, self.full = chunk, False
            return False
        self.written.append(chunk)
        return True

    async def settle(self) -> None:
        self.settled += 1
        assert self.pending is not None
        self.written.append(self.pending)
        self.pending = None


async def _tapped_reader(log: MemoryStreamLog, connection: _Connection,
                         ) -> tuple[asyncio.Task[None], list[bytes]]:
    """A body writer: binds the tap, writes what the reader yields to the same place."""
    tap = Tap()
    tap.bind(connection.write, connection.settle)
    yielded: list[bytes] = []

    async def body() -> None:
        async for chunk in log.read("s", 0, tap):
            yielded.append(chunk)
            connection.written.append(chunk)

    task = asyncio.create_task(body())
    for _ in range(5):
        await asyncio.sleep(0)  # it reads what there is and waits, caught up
    return task, yielded


async def test_a_caught_up_reader_gets_events_through_its_tap_not_its_task() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    await log.append("s", "start", {})
    connection = _Connection()
    task, yielded = await _tapped_reader(log, connection)
    assert len(yielded) == 1  # `start`, read by the reader itself
    for n in range(20):
        await log.append("s", "delta", {"text": f"t{n}"})
        await asyncio.sleep(0)  # a model's pace: the loop runs between two tokens
        # written by a callback of the append's loop pass: no wake-up of the reader
        assert len(connection.written) == n + 2
    await log.append("s", "done", {})
    await asyncio.wait_for(task, 5)
    assert len(yielded) == 1, "the reader's task yielded nothing after it caught up"
    events = _decode(connection.written)
    assert [e[0] for e in events] == [str(n) for n in range(1, 23)]
    assert events[-1][1] == "done"
    await log.close()


async def test_a_tap_that_cannot_write_hands_back_and_order_is_kept() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    connection = _Connection()
    task, yielded = await _tapped_reader(log, connection)
    await log.append("s", "delta", {"text": "a"})
    await asyncio.sleep(0)
    connection.full = True
    await log.append("s", "delta", {"text": "b"})
    await asyncio.sleep(0)  # left pending
    for text in "cdef":
        await log.append("s", "delta", {"text": text})  # pile up for the reader
        await asyncio.sleep(0)
    await log.append("s", "done", {})
    await asyncio.wait_for(task, 5)
    assert connection.settled == 1
    assert [e[2] for e in _decode(connection.written)][:6] == [
        '{"text":"a"}', '{"text":"b"}', '{"text":"c"}', '{"text":"d"}', '{"text":"e"}',
        '{"text":"f"}']
    assert len(yielded) == 1, "what piled up while the write waited goes out in one chunk"
    await log.close()


async def test_a_burst_goes_through_the_tap_in_one_write() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    await log.append("s", "start", {})
    connection = _Connection()
    task, yielded = await _tapped_reader(log, connection)
    for n in range(50):  # one network read's worth of tokens: no suspension between
        await log.append("s", "delta", {"text": f"t{n}"})
    await asyncio.sleep(0)
    assert len(connection.written) == 2, "50 deltas of one loop pass are one write"
    assert len(_decode(connection.written[1:])) == 50
    await log.append("s", "done", {})
    await asyncio.wait_for(task, 5)
    assert len(yielded) == 1
    await log.close()


async def test_a_tap_whose_write_fails_ends_its_reader_with_the_error() -> None:
    log = MemoryStreamLog()
    await log.create("s")

    def broken(chunk: bytes) -> bool:
        raise ConnectionError("gone")

    async def nothing() -> None:
        pass

    tap = Tap()
    tap.bind(broken, nothing)
    reader = log.read("s", 0, tap)
    waiting = asyncio.ensure_future(reader.__anext__())
    await asyncio.sleep(0)
    await log.append("s", "delta", {"text": "a"})  # the producer is not hurt
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 5)
    assert await log.append("s", "done", {}) == 2
    await log.close()


async def test_an_unbound_tap_leaves_the_reader_to_write_everything() -> None:
    log = MemoryStreamLog()
    await log.create("s")
    reader = asyncio.ensure_future(_collect_tapped(log, Tap()))
    await asyncio.sleep(0)
    for n in range(5):
        await log.append("s", "delta", {"text": f"t{n}"})
        await asyncio.sleep(0)
    await log.append("s", "done", {})
    assert len(_decode(await asyncio.wait_for(reader, 5))) == 6


async def _collect_tapped(log: MemoryStreamLog, tap: Tap) -> list[bytes]:
    return [chunk async for chunk in log.read("s", 0, tap)]
