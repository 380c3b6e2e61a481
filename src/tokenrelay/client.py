"""The Python client: `for event in client.chat(...)`, resuming by itself.

    from tokenrelay import Client

    with Client("http://127.0.0.1:8000") as client:
        for event in client.chat("Write a haiku about streams"):
            ...
        print(client.chat("hi").text())

When the connection drops mid-answer, the client reconnects to
`GET /api/streams/{id}` with `Last-Event-ID` (bounded retries with backoff) and the
caller sees one unbroken stream; the text is checked against `done.length`. A submit
that fails before the answer starts is retried with the same `Idempotency-Key`, so it
never starts two answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from tokenrelay.events import Delta, Done, Error, Start, StreamEvent, parse_event
from tokenrelay.messages import Message
from tokenrelay.sse import Decoder

__all__ = [
    "AsyncChatStream", "AsyncClient", "ChatStream", "Client", "APIError", "StreamFailed",
    "StreamInterrupted", "StreamMismatch",
]

DEFAULT_URL = "http://127.0.0.1:8000"
MessagesLike = str | Sequence[Message | Mapping[str, str]]


class APIError(Exception):
    """The server refused a request: `status`, its error `code` and `message`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class StreamInterrupted(Exception):
    """The connection could not be resumed within the retries; `stream_id` and
    `last_event_id` say where to pick it up later."""

    def __init__(self, message: str, stream_id: str | None, last_event_id: int):
        super().__init__(message)
        self.stream_id, self.last_event_id = stream_id, last_event_id


class StreamFailed(Exception):
    """The answer ended with an `error` event; `text` is the partial answer."""

    def __init__(self, error: Error, text: str):
        super().__init__(f"{error.code}: {error.message}")
        self.error, self.text = error, text


class StreamMismatch(Exception):
    """The text received does not add up to the `length` the server reports: a bug
    somewhere between the two, never to be passed on silently."""


class _Cut(Exception):
    pass


class _Reading:
    """What the reader of one answer knows across reconnects (no I/O here)."""

    def __init__(self, stream_id: str | None = None, after: int = 0):
        self.stream_id = stream_id
        self.conversation_id: str | None = None
        self.last_id = after
        self.from_start = after == 0
        self.parts: list[str] = []
        self.length = 0
        self.end: Done | Error | None = None
        self._decoder = Decoder()

    def reconnecting(self) -> None:
        self._decoder = Decoder()

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events = []
        for raw in self._decoder.feed(chunk):
            event = parse_event(raw.event, raw.id, raw.data)
            if event is None or (event.id and event.id <= self.last_id):
                continue  # an unknown event, or one already seen
            self.last_id = event.id
            if isinstance(event, Delta):
                self.parts.append(event.text)
                self.length += len(event.text)
            elif isinstance(event, Start):
                self.stream_id, self.conversation_id = event.stream_id, event.conversation_id
            else:
                self.end = event
                if self.from_start and event.length != self.length:
                    raise StreamMismatch(
                        f"received {self.length} characters, the server sent {event.length}")
            events.append(event)
        return events

    def text(self) -> str:
        return "".join(self.parts)


def _messages(messages: MessagesLike) -> list[dict[str, str]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [{"role": m.role, "content": m.content} if isinstance(m, Message) else dict(m)
            for m in messages]


def _chat_request(http: httpx.Client | httpx.AsyncClient, messages: MessagesLike,
                  idempotency_key: str | None, **fields: Any) -> httpx.Request:
    """POST /api/chat, with an Idempotency-Key so that it can be sent again safely."""
    body: dict[str, Any] = {"messages": _messages(messages)}
    body.update({k: v for k, v in fields.items() if v is not None})
    return http.build_request("POST", "/api/chat", json=body, headers={
        "Idempotency-Key": idempotency_key or str(uuid.uuid4())})


def _resume_request(http: httpx.Client | httpx.AsyncClient, reading: _Reading) -> httpx.Request:
    """GET the stream from after the last event seen."""
    return http.build_request(
        "GET", f"/api/streams/{reading.stream_id}",
        headers={"Last-Event-ID": str(reading.last_id)} if reading.last_id else {})


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200]
    raise APIError(response.status_code, code, message)


#: a proxy's answer while a backend restarts: worth another try
_RETRY_STATUSES = frozenset({502, 503, 504})


def _may_resend(request: httpx.Request, exc: httpx.TransportError) -> bool:
    """A GET, or a POST with an Idempotency-Key, is safe to send again whatever
    happened; another POST only if it never reached the server."""
    if request.method == "GET" or "idempotency-key" in request.headers:
        return True
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class _Stream:
    """What both stream classes hold: the request that starts the answer (None to
    attach to an existing stream) and what has been read of it."""

    def __init__(self, client: Any, request: httpx.Request | None, reading: _Reading):
        self._client = client
        self._request = request
        self._reading = reading

    @property
    def stream_id(self) -> str | None:
        return self._reading.stream_id

    @property
    def conversation_id(self) -> str | None:
        return self._reading.conversation_id


class ChatStream(_Stream):
    """One answer, iterated once: yields `Start`, `Delta`s, then `Done` or `Error`."""

    _client: Client

    def __iter__(self) -> Iterator[StreamEvent]:
        client, reading = self._client, self._reading
        response = client._open(self._request, reading) if self._request else \
            client._reopen(reading)
        retries = 0
        while True:
            try:
                try:
                    for chunk in response.iter_bytes():
                        for event in reading.feed(chunk):
                            retries = 0
                            yield event
                        if reading.end is not None:
                            return
                    raise _Cut("the connection ended before the answer did")
                finally:
                    response.close()
            except (httpx.TransportError, _Cut) as exc:
                if reading.stream_id is None or retries >= client.max_retries:
                    raise StreamInterrupted(f"could not resume: {exc}", reading.stream_id,
                                            reading.last_id) from exc
                time.sleep(client.backoff * 2 ** retries)
                retries += 1
                reading.reconnecting()
                response = client._reopen(reading)

    def text(self) -> str:
        """Read to the end; the whole answer. Raises StreamFailed on an `error` event."""
        for _ in self:
            pass
        if isinstance(self._reading.end, Error):
            raise StreamFailed(self._reading.end, self._reading.text())
        return self._reading.text()


class Client:
    """A synchronous client for a tokenrelay server."""

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 5, backoff: float = 0.25,
                 transport: httpx.BaseTransport | None = None):
        self.max_retries, self.backoff = max_retries, backoff
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key),
                                  timeout=httpx.Timeout(timeout, connect=10), transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def chat(self, messages: MessagesLike, *, model: str | None = None,
             conversation_id: str | None = None, max_tokens: int | None = None,
             temperature: float | None = None, options: Mapping[str, Any] | None = None,
             idempotency_key: str | None = None) -> ChatStream:
        """Start an answer. Nothing is sent until you iterate (or call `.text()`)."""
        request = _chat_request(self._http, messages, idempotency_key, model=model,
                                conversation_id=conversation_id, max_tokens=max_tokens,
                                temperature=temperature, options=options)
        return ChatStream(self, request, _Reading())

    def regenerate(self, conversation_id: str, *, model: str | None = None,
                   options: Mapping[str, Any] | None = None) -> ChatStream:
        body = {k: v for k, v in {"model": model, "options": options}.items() if v is not None}
        request = self._http.build_request(
            "POST", f"/api/conversations/{conversation_id}/regenerate", json=body)
        return ChatStream(self, request, _Reading())

    def stream(self, stream_id: str, *, after: int = 0) -> ChatStream:
        """Read an existing stream from after event `after` (0: from the start)."""
        return ChatStream(self, None, _Reading(stream_id, after))

    def _open(self, request: httpx.Request | None, reading: _Reading) -> httpx.Response:
        if request is None:
            request = _resume_request(self._http, reading)
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt == self.max_retries or not _may_resend(request, exc):
                    raise StreamInterrupted(f"no response: {exc}", reading.stream_id,
                                            reading.last_id) from exc
            else:
                if response.status_code not in _RETRY_STATUSES or attempt == self.max_retries:
                    break
                response.close()
            time.sleep(self.backoff * 2 ** attempt)
        if response.status_code >= 400:
            response.read()
            _raise_for(response)
        if response.status_code == 204:
            response.close()
            raise _Cut("the stream has no events after the last one seen")
        reading.stream_id = reading.stream_id or response.headers.get("x-stream-id")
        return response

    def _reopen(self, reading: _Reading) -> httpx.Response:
        try:
            return self._open(None, reading)
        except _Cut as exc:
            raise StreamInterrupted(str(exc), reading.stream_id, reading.last_id) from exc

    def cancel(self, stream_id: str) -> bool:
        """Stop a generation; False if it had already ended."""
        return bool(self._json("POST", f"/api/streams/{stream_id}/cancel")["cancelled"])

    def conversations(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._json("GET", "/api/conversations", params=params)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/conversations/{conversation_id}")

    def rename(self, conversation_id: str, title: str) -> dict[str, Any]:
        return self._json("PATCH", f"/api/conversations/{conversation_id}", json={"title": title})

    def delete(self, conversation_id: str) -> None:
        self._json("DELETE", f"/api/conversations/{conversation_id}")

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/api/models")

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        _raise_for(response)
        return response.json() if response.content else {}


class AsyncChatStream(_Stream):
    """One answer, iterated once with `async for`; `await stream.text()`."""

    _client: AsyncClient

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        client, reading = self._client, self._reading
        response = await (client._open(self._request, reading) if self._request
                          else client._reopen(reading))
        retries = 0
        while True:
            try:
                try:
                    async for chunk in response.aiter_bytes():
                        for event in reading.feed(chunk):
                            retries = 0
                            yield event
                        if reading.end is not None:
                            return
                    raise _Cut("the connection ended before the answer did")
                finally:
                    await response.aclose()
            except (httpx.TransportError, _Cut) as exc:
                if reading.stream_id is None or retries >= client.max_retries:
                    raise StreamInterrupted(f"could not resume: {exc}", reading.stream_id,
                                            reading.last_id) from exc
                await asyncio.sleep(client.backoff * 2 ** retries)
                retries += 1
                reading.reconnecting()
                response = await client._reopen(reading)

    async def text(self) -> str:
        async for _ in self:
            pass
        if isinstance(self._reading.end, Error):
            raise StreamFailed(self._reading.end, self._reading.text())
        return self._reading.text()


class AsyncClient:
    """The asyncio twin of `Client`, with the same methods, awaited."""

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 5, backoff: float = 0.25,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.max_retries, self.backoff = max_retries, backoff
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key),
                                       timeout=httpx.Timeout(timeout, connect=10),
                                       transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def chat(self, messages: MessagesLike, *, model: str | None = None,
             conversation_id: str | None = None, max_tokens: int | None = None,
             temperature: float | None = None, options: Mapping[str, Any] | None = None,
             idempotency_key: str | None = None) -> AsyncChatStream:
        request = _chat_request(self._http, messages, idempotency_key, model=model,
                                conversation_id=conversation_id, max_tokens=max_tokens,
                                temperature=temperature, options=options)
        return AsyncChatStream(self, request, _Reading())

    def stream(self, stream_id: str, *, after: int = 0) -> AsyncChatStream:
        return AsyncChatStream(self, None, _Reading(stream_id, after))

    async def _open(self, request: httpx.Request | None, reading: _Reading) -> httpx.Response:
        if request is None:
            request = _resume_request(self._http, reading)
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt == self.max_retries or not _may_resend(request, exc):
                    raise StreamInterrupted(f"no response: {exc}", reading.stream_id,
                                            reading.last_id) from exc
            else:
                if response.status_code not in _RETRY_STATUSES or attempt == self.max_retries:
                    break
                await response.aclose()
            await asyncio.sleep(self.backoff * 2 ** attempt)
        if response.status_code >= 400:
            await response.aread()
            _raise_for(response)
        if response.status_code == 204:
            await response.aclose()
            raise _Cut("the stream has no events after the last one seen")
        reading.stream_id = reading.stream_id or response.headers.get("x-stream-id")
        return response

    async def _reopen(self, reading: _Reading) -> httpx.Response:
        try:
            return await self._open(None, reading)
        except _Cut as exc:
            raise StreamInterrupted(str(exc), reading.stream_id, reading.last_id) from exc

    async def cancel(self, stream_id: str) -> bool:
        return bool((await self._json("POST", f"/api/streams/{stream_id}/cancel"))["cancelled"])

    async def conversations(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self._json("GET", "/api/conversations", params=params)

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/api/conversations/{conversation_id}")

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._http.request(method, path, **kwargs)
        _raise_for(response)
        return response.json() if response.content else {}
