"""`AsyncClient` and `AsyncChatStream`: the asyncio twin of `_sync`, line for line;
every decision is `_base`'s or `_reading`'s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tokenrelay.client._base import DEFAULT_URL, BaseClient, BaseStream, Call, T, http_options
from tokenrelay.client._reading import Cut, Reading, is_event_stream
from tokenrelay.events import StreamEvent
from tokenrelay.messages import AssistantToolCall


class AsyncChatStream(BaseStream):
    """One answer, with `async for`; `await stream.text()`. Iterated again, it
    replays what it read, and reads on only if the answer had not ended."""

    _client: AsyncClient

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        for event in self.events:
            yield event
        if self.end is None:
            async for event in self._read():
                yield event

    async def text(self) -> str:
        """Read to the end; the whole answer. Raises StreamFailed on an `error` event."""
        async for _ in self:
            pass
        return self._outcome()

    async def reasoning(self) -> str:
        """Read to the end; the model's whole reasoning ("" for a model without)."""
        await self.text()
        return self._reading.reasoning()

    async def tool_calls(self) -> list[AssistantToolCall]:
        """Read to the end; the tool calls the model asked for, assembled."""
        await self.text()
        return self._reading.tool_calls()

    async def _read(self) -> AsyncIterator[StreamEvent]:
        reading = self._reading
        while True:
            response = await self._client._open(reading)
            try:
                async for chunk in response.aiter_bytes():
                    for event in reading.feed(chunk):
                        yield event
                    if reading.end is not None:
                        return
                cut: Exception = Cut("the connection ended before the answer did")
            except httpx.TransportError as exc:
                cut = exc
            finally:
                await response.aclose()
            await asyncio.sleep(reading.after_cut(cut))


class AsyncClient(BaseClient[AsyncChatStream]):
    """The asyncio twin of `Client`: the same methods, awaited (and `aclose()`)."""

    _http: httpx.AsyncClient
    _stream_class = AsyncChatStream

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 5, backoff: float = 0.25,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(max_retries, backoff)
        self._http = httpx.AsyncClient(transport=transport,
                                       **http_options(base_url, api_key, timeout))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def cancel(self, stream_id: str) -> bool:
        """Stop a generation; False if it had already ended."""
        return await self._call(self._cancel(stream_id))

    async def conversations(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """A page of conversations, newest first; pass `next_cursor` back as `cursor`."""
        return await self._call(self._conversations(limit, cursor))

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages, each with its status."""
        return await self._call(self._conversation(conversation_id))

    async def rename(self, conversation_id: str, title: str) -> dict[str, Any]:
        return await self._call(self._rename(conversation_id, title))

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation; an answer still streaming in it is stopped first."""
        await self._call(self._delete(conversation_id))

    async def models(self) -> dict[str, Any]:
        """The models the server can serve now, and its default."""
        return await self._call(self._models())

    async def _call(self, call: Call[T]) -> T:
        return call.result(await self._http.send(call.request))

    async def _open(self, reading: Reading) -> httpx.Response:
        """Send the reading's next request, again for as long as the reading says so."""
        attempt = 0
        while True:
            request = reading.next_request()
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                delay = reading.after_send_error(request, exc, attempt)
            else:
                if (delay := reading.after_status(response.status_code, attempt)) is None:
                    if not is_event_stream(response):
                        await response.aread()  # an error's body says why; then it is closed
                    reading.opened(response)
                    return response
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1
