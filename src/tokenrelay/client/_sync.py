"""`Client` and `ChatStream`: the blocking I/O loops. Every decision is `_base`'s or
`_reading`'s; `_async` is this module's twin, line for line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from tokenrelay.client._base import DEFAULT_URL, BaseClient, BaseStream, Call, T, http_options
from tokenrelay.client._reading import Cut, Reading, is_event_stream
from tokenrelay.events import StreamEvent
from tokenrelay.messages import AssistantToolCall


class ChatStream(BaseStream):
    """One answer: yields `Start`, `Delta`s, then `Done` or `Error`. Iterated again,
    it replays what it read, and reads on only if the answer had not ended."""

    _client: Client

    def __iter__(self) -> Iterator[StreamEvent]:
        yield from self.events
        if self.end is None:
            yield from self._read()

    def text(self) -> str:
        """Read to the end; the whole answer. Raises StreamFailed on an `error` event."""
        for _ in self:
            pass
        return self._outcome()

    def reasoning(self) -> str:
        """Read to the end; the model's whole reasoning ("" for a model without)."""
        self.text()
        return self._reading.reasoning()

    def tool_calls(self) -> list[AssistantToolCall]:
        """Read to the end; the tool calls the model asked for, assembled."""
        self.text()
        return self._reading.tool_calls()

    def _read(self) -> Iterator[StreamEvent]:
        reading = self._reading
        while True:
            response = self._client._open(reading)
            try:
                for chunk in response.iter_bytes():
                    yield from reading.feed(chunk)
                    if reading.end is not None:
                        return
                cut: Exception = Cut("the connection ended before the answer did")
            except httpx.TransportError as exc:
                cut = exc
            finally:
                response.close()
            time.sleep(reading.after_cut(cut))


class Client(BaseClient[ChatStream]):
    """A synchronous client for a tokenrelay server."""

    _http: httpx.Client
    _stream_class = ChatStream

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 5, backoff: float = 0.25,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(max_retries, backoff)
        self._http = httpx.Client(transport=transport, **http_options(base_url, api_key, timeout))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def cancel(self, stream_id: str) -> bool:
        """Stop a generation; False if it had already ended."""
        return self._call(self._cancel(stream_id))

    def conversations(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """A page of conversations, newest first; pass `next_cursor` back as `cursor`."""
        return self._call(self._conversations(limit, cursor))

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages, each with its status."""
        return self._call(self._conversation(conversation_id))

    def rename(self, conversation_id: str, title: str) -> dict[str, Any]:
        return self._call(self._rename(conversation_id, title))

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation; an answer still streaming in it is stopped first."""
        self._call(self._delete(conversation_id))

    def models(self) -> dict[str, Any]:
        """The models the server can serve now, and its default."""
        return self._call(self._models())

    def _call(self, call: Call[T]) -> T:
        return call.result(self._http.send(call.request))

    def _open(self, reading: Reading) -> httpx.Response:
        """Send the reading's next request, again for as long as the reading says so."""
        attempt = 0
        while True:
            request = reading.next_request()
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                delay = reading.after_send_error(request, exc, attempt)
            else:
                if (delay := reading.after_status(response.status_code, attempt)) is None:
                    if not is_event_stream(response):
                        response.read()  # an error's body says why; then it is closed
                    reading.opened(response)
                    return response
                response.close()
            time.sleep(delay)
            attempt += 1
