"""One generation: runs a provider into the stream log and the store, apart from any
HTTP connection (DESIGN.md: "The generation is not tied to the HTTP connection")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from tokenrelay import metrics
from tokenrelay.events import (
    DELTA, DONE, ERROR, REASONING, TOOL_CALL, Finish, ReasoningDelta, TextDelta, ToolCallDelta,
    Usage,
)
from tokenrelay.providers import ChatRequest, Provider, ProviderError
from tokenrelay.store import Status, Store
from tokenrelay.streams import StreamLog

log = logging.getLogger("tokenrelay.generation")

#: a provider that yields many deltas without suspending (a burst from one network
#: read, or the scripted provider with no delay) gets the loop taken from it this often,
#: so readers write what has piled up (in one write each) and cancels land
SLICE = 0.001
#: the longest the end of a stream waits for the database before it is announced
STORE_TIMEOUT = 10.0
_UNSTORED = ("The conversation could not be stored (the database is unavailable); "
             "retry later.")
def _failed(write: asyncio.Future[None]) -> bool:
    """Whether a finished write failed (an exception, or cancelled)."""
    return write.cancelled() or write.exception() is not None


class Generation:
    """Pumps `provider.stream(request)` into `stream_id`; `cancel()` stops it between
    tokens, from any task. Always ends the stream with `done` or `error`."""

    def __init__(
        self,
        *,
        stream_id: str,
        message_id: str,
        provider: Provider,
        request: ChatRequest,
        streams: StreamLog,
        store: Store | None,
        keep: Callable[[asyncio.Future[Any]], None],
        abandon_after: float | None = None,
        written: asyncio.Future[None] | None = None,
        dropped: int = 0,
        provider_name: str = "unknown",
        accepted: float | None = None,
    ):
        self.stream_id = stream_id
        self.message_id = message_id
        #: earlier messages the provider left out to fit its context (said in `done`)
        self._dropped = dropped
        self._provider = provider
        self._request = request
        self._streams = streams
        #: None: nothing of this answer is stored (the client opted out)
        self._store = store
        #: holds a write that outlives the stream (the service's background set)
        self._keep = keep
        self._abandon_after = abandon_after
        #: the task running the pump, while it runs (what `cancel()` cancels)
        self._pumping: asyncio.Task[None] | None = None
        self._cancel_reason: str | None = None
        self._parts: list[str] = []
        self._length = 0
        self._reasoning: list[str] = []
        self._reasoning_length = 0
        self._signature: str | None = None
        #: tool calls by index: id, name and the pieces of their arguments
        self._calls: dict[int, dict[str, Any]] = {}
        self._deltas = 0
        self._usage: Usage | None = None
        self._finish: str = "stop"
        self._started = time.perf_counter()
        self._first_token: float | None = None
        #: for the metrics: the provider's name (a label), when the service took the
        #: request, and when the provider was asked (tokenrelay/metrics.py)
        self._provider_name = provider_name
        self._accepted = accepted if accepted is not None else self._started
        self._asked: float | None = None
        #: the answer row's write, still in flight when the provider starts; every
        #: write of the answer waits for it, and its failure stops the generation
        self._written = written
        if written is not None:
            written.add_done_callback(self._on_written)

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the provider at its next await; `reason` is `cancelled`, `abandoned`,
        `shutdown` or `unstored`."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        if self._pumping is not None:
            self._pumping.cancel()
            self._pumping = None  # once: the end that follows must not be cancelled

    def _on_written(self, written: asyncio.Future[None]) -> None:
        if _failed(written):
            log.error("could not store the question and answer of stream %s: %s",
                      self.stream_id, "cancelled" if written.cancelled() else written.exception())
            self.cancel("unstored")

    async def turn_written(self) -> None:
        """Wait until the turn's rows are in the store (or their write failed): a
        reader of the conversation just started must find it."""
        if self._written is not None and not self._written.done():
            await asyncio.wait([self._written])

    async def _row_written(self) -> bool:
        if self._written is None:
            return True
        if not self._written.done():  # (asyncio.wait costs a future and callbacks even so)
            await asyncio.wait([self._written])
        return not _failed(self._written)

    async def run(self) -> None:
        """The pump, then the end, in the generation's own task (issue 7: a task costs
        its context, coroutine and wake-ups; issue 16: so does each coroutine frame
        under it). `cancel()` cancels this task only while the pump runs, never the
        end that follows it."""
        metrics.stream_started(self._provider_name)
        watchdog = asyncio.create_task(self._watch_readers()) if self._abandon_after else None
        task = asyncio.current_task()
        try:
            if self._cancel_reason is not None:
                raise asyncio.CancelledError  # cancelled before it started
            self._pumping = task
            try:
                await self._pump()
            finally:
                self._pumping = None
        except asyncio.CancelledError:
            if self._cancel_reason is None:  # the loop itself is going away
                self._cancel_reason = "shutdown"
            elif task is not None:
                task.uncancel()  # our own cancel, handled here; not the loop's
            await self._cancelled()
        except ProviderError as exc:
            await self._fail(exc.code, exc.message)
        except Exception as exc:  # a provider bug must still end the stream
            log.exception("provider failed in stream %s", self.stream_id)
            await self._fail("internal_error", f"The provider failed: {type(exc).__name__}: {exc}")
        else:
            await self._succeed(self._finish)
        finally:
            metrics.stream_stopped(self._provider_name)
            if watchdog is not None:
                watchdog.cancel()

    async def _cancelled(self) -> None:
        if self._cancel_reason == "shutdown":
            await self._fail("shutdown", "The server shut down; the partial answer is kept.",
                             status="interrupted")
        elif self._cancel_reason == "unstored":
            await self._fail("database_unavailable", _UNSTORED)
        else:
            await self._succeed("cancelled")

    async def _pump(self) -> None:
        append, stream_id = self._streams.append, self.stream_id
        slice_start = previous = self._asked = time.perf_counter()
        # aclosing: a cancel that lands here (not inside the provider) still runs the
        # provider's cleanup at once, which closes the upstream or frees the model.
        async with contextlib.aclosing(self._provider.stream(self._request)) as chunks:
            async for chunk in chunks:
                kind = type(chunk)
                if kind is TextDelta:
                    text = chunk.text
                    if not text:
                        continue
                    self._parts.append(text)
                    self._length += len(text)
                    self._deltas += 1
                    await append(stream_id, DELTA, {"text": text})
                elif kind is ReasoningDelta:
                    if not await self._add_reasoning(chunk):
                        continue
                elif kind is ToolCallDelta:
                    await self._add_tool_call(chunk)
                else:
                    if kind is Usage:
                        self._usage = chunk
                    elif kind is Finish:
                        self._finish = chunk.reason
                    continue
                now = time.perf_counter()
                if self._first_token is None:
                    self._first_token = now
                    slice_start = 0.0  # the first token goes out at once
                elif now - previous >= SLICE:
                    # A pause before this piece: the provider waited (the loop had
                    # its turn meanwhile), so no extra one (issue 7: one loop pass
                    # less per token at a model's pace).
                    slice_start = now
                if now - slice_start >= SLICE:
                    await asyncio.sleep(0)
                    slice_start = time.perf_counter()
                previous = now

    async def _add_reasoning(self, chunk: ReasoningDelta) -> bool:
        """Keep and stream a piece of reasoning; False if it had no text (a signature
        alone closes a thinking block: kept for the provider, never streamed)."""
        if chunk.signature is not None:
            self._signature = chunk.signature
        if not chunk.text:
            return False
        self._reasoning.append(chunk.text)
        self._reasoning_length += len(chunk.text)
        self._deltas += 1
        await self._streams.append(self.stream_id, REASONING, {"text": chunk.text})
        return True

    async def _add_tool_call(self, chunk: ToolCallDelta) -> None:
        call = self._calls.get(chunk.index)
        data: dict[str, Any] = {"index": chunk.index}
        if call is None:
            call = self._calls[chunk.index] = {"id": chunk.id or f"call_{self.message_id}_"
                                               f"{chunk.index}", "name": chunk.name or "",
                                               "arguments": []}
            data["id"], data["name"] = call["id"], call["name"]
        elif chunk.name and not call["name"]:
            call["name"] = data["name"] = chunk.name
        call["arguments"].append(chunk.arguments)
        data["arguments"] = chunk.arguments
        await self._streams.append(self.stream_id, TOOL_CALL, data)

    def tool_calls(self) -> list[dict[str, str]]:
        """The calls so far, assembled, in index order."""
        return [{"id": call["id"], "name": call["name"], "arguments": "".join(call["arguments"])}
                for _, call in sorted(self._calls.items())]

    @property
    def reasoning(self) -> str:
        if len(self._reasoning) > 1:
            self._reasoning[:] = ["".join(self._reasoning)]
        return self._reasoning[0] if self._reasoning else ""

    @property
    def reasoning_length(self) -> int:
        return self._reasoning_length

    @property
    def length(self) -> int:
        """The text's length so far, in code points."""
        return self._length

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def _summary(self) -> dict[str, Any]:
        ended = time.perf_counter()
        output_tokens = self._deltas
        usage: dict[str, Any] = {"input_tokens": None, "output_tokens": output_tokens}
        if self._usage is not None:
            usage["input_tokens"] = self._usage.input_tokens
            if self._usage.output_tokens is not None:
                usage["output_tokens"] = output_tokens = self._usage.output_tokens
        timings: dict[str, Any] = {
            "ttft_ms": None, "tokens_per_s": None, "total_ms": round((ended - self._started) * 1000, 3)
        }
        if self._first_token is not None:
            timings["ttft_ms"] = round((self._first_token - self._started) * 1000, 3)
            span = ended - self._first_token
            if span > 0 and output_tokens > 1:
                # The first token's time is TTFT; the rate counts the tokens after it.
                timings["tokens_per_s"] = round((output_tokens - 1) / span, 2)
        return {"usage": usage, "timings": timings}

    async def _succeed(self, finish_reason: str) -> None:
        status: Status = "cancelled" if finish_reason == "cancelled" else "complete"
        await self._end(status, DONE, {"finish_reason": finish_reason})

    async def _fail(self, code: str, message: str, *, status: Status = "error") -> None:
        await self._end(status, ERROR, {"code": code, "message": message},
                        error_code=code, error_message=message)

    async def _end(self, status: Status, event: str, data: dict[str, Any], **fields: Any) -> None:
        summary = self._summary()
        if event == DONE:
            data.update(summary)
        data["length"] = self._length
        data["reasoning_length"] = self._reasoning_length
        calls = self.tool_calls()
        if event == DONE:
            data["tool_calls"] = calls
            data["messages_dropped"] = self._dropped
        final = {"content": self.text, "status": status, "reasoning": self.reasoning,
                 "reasoning_signature": self._signature, "tool_calls": calls or None,
                 **summary, **fields}
        # Store first, then announce: a client that sees the end and reads the
        # conversation finds the final text and status. Bounded: a hung database must
        # not leave the stream without its end; the write then goes on behind it, so
        # that the answer never stays `streaming`.
        try:
            if self._store is not None:
                await self._store_bounded(final)
        finally:
            written = self._written
            if event == DONE and written is not None and written.done() and _failed(written):
                # The answer streamed in full but its conversation was never stored.
                event, data = ERROR, {"code": "database_unavailable", "length": self._length,
                                      "message": _UNSTORED}
            await self._streams.append(self.stream_id, event, data)
            self._count_end(event, data, summary)

    def _count_end(self, event: str, data: dict[str, Any], summary: dict[str, Any]) -> None:
        """The metrics of this stream, once, from its end (never per token)."""
        if event == DONE:
            reason = data["finish_reason"]
            if reason == "cancelled" and self._cancel_reason == "abandoned":
                reason = "abandoned"
            code = None
        else:
            reason, code = "error", data["code"]
        metrics.stream_ended(self._provider_name, reason, code, summary,
                             accepted=self._accepted, asked=self._asked,
                             first_token=self._first_token)

    async def _store_bounded(self, final: dict[str, Any]) -> None:
        write = asyncio.ensure_future(self._store_end(final))
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await asyncio.shield(write)
        except TimeoutError:
            log.warning("the database is slow: stream %s ends before its answer is stored",
                        self.stream_id)
            self._keep(write)

    async def _store_end(self, final: dict[str, Any]) -> None:
        try:
            if self._store is not None and await self._row_written():
                await self._store.update_message(self.message_id, **final)
        except Exception:
            log.exception("could not store the end of stream %s", self.stream_id)

    async def _watch_readers(self) -> None:
        assert self._abandon_after is not None
        interval = min(self._abandon_after / 2, 1.0)
        while True:
            await asyncio.sleep(interval)
            info = await self._streams.info(self.stream_id)
            if info.unread_since is not None and time.monotonic() - info.unread_since >= self._abandon_after:
                log.info("stream %s had no reader for %.0fs: stopping it", self.stream_id, self._abandon_after)
                self.cancel("abandoned")
                return
