"""What `Client` and `AsyncClient` share (HTTPX's `BaseClient`): every request they
send is built here, with what its answer means, and so is the stream object's state.
The twins add only the I/O: sending, reading bytes, sleeping."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from tokenrelay.client._errors import StreamFailed, raise_for
from tokenrelay.client._reading import Backoff, Reading
from tokenrelay.events import Done, Error, StreamEvent
from tokenrelay.messages import Message

DEFAULT_URL = "http://127.0.0.1:8000"
MessagesLike = str | Sequence[Message | Mapping[str, str]]

T = TypeVar("T")
S = TypeVar("S", bound="BaseStream")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One plain JSON request, and what its answer means."""

    request: httpx.Request
    parse: Callable[[Any], T]

    def result(self, response: httpx.Response) -> T:
        raise_for(response)
        return self.parse(response.json() if response.content else None)


def _message(message: Message) -> dict[str, Any]:
    """A message as /api/chat takes it (tool calls in OpenAI's format)."""
    body: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        body["tool_calls"] = [call.openai() for call in message.tool_calls]
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    return body


def _messages(messages: MessagesLike) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [_message(m) if isinstance(m, Message) else dict(m) for m in messages]


def _fields(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _as_dict(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {}


def _nothing(body: Any) -> None:
    return None


def http_options(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    """The httpx client's settings, the same for both twins."""
    return {"base_url": base_url, "timeout": httpx.Timeout(timeout, connect=10),
            "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {}}


class BaseStream:
    """One answer: what has been read of it, replayed to a second iteration (`llm`'s
    Response: it iterates once, then gives back what it read)."""

    def __init__(self, client: Any, reading: Reading):
        self._client = client
        self._reading = reading

    @property
    def stream_id(self) -> str | None:
        return self._reading.stream_id

    @property
    def conversation_id(self) -> str | None:
        return self._reading.conversation_id

    @property
    def model(self) -> str | None:
        """The model answering, from the `start` event."""
        start = self._reading.start_event
        return start.model if start else None

    @property
    def events(self) -> tuple[StreamEvent, ...]:
        """The events read so far, in order."""
        return tuple(self._reading.events)

    @property
    def received(self) -> str:
        """The text read so far: all of it once the stream has ended."""
        return self._reading.text()

    @property
    def received_reasoning(self) -> str:
        """The reasoning read so far."""
        return self._reading.reasoning()

    @property
    def end(self) -> Done | Error | None:
        """How the answer ended (`Done` or `Error`); None while it has not been read to
        its end."""
        return self._reading.end

    def _outcome(self) -> str:
        if isinstance(self._reading.end, Error):
            raise StreamFailed(self._reading.end, self._reading.text())
        return self._reading.text()


class BaseClient(Generic[S]):
    """Request building for both twins. The methods that return a stream are here
    whole: nothing is sent until the stream is iterated."""

    _http: httpx.Client | httpx.AsyncClient
    _stream_class: type[S]

    def __init__(self, max_retries: int, backoff: float):
        self.max_retries, self.backoff = max_retries, backoff

    def chat(self, messages: MessagesLike, *, model: str | None = None,
             conversation_id: str | None = None, max_tokens: int | None = None,
             temperature: float | None = None, options: Mapping[str, Any] | None = None,
             idempotency_key: str | None = None,
             tools: Sequence[Mapping[str, Any]] | None = None,
             tool_choice: str | Mapping[str, Any] | None = None,
             parallel_tool_calls: bool | None = None,
             reasoning_effort: str | None = None) -> S:
        """Start an answer. Nothing is sent until you iterate (or call `.text()`).
        The POST carries an Idempotency-Key, so that it can be sent again safely.
        `tools` are OpenAI function tools (`{"type": "function", "function": {...}}`)."""
        body = {"messages": _messages(messages), **_fields(
            model=model, conversation_id=conversation_id, max_tokens=max_tokens,
            temperature=temperature, options=options,
            tools=list(tools) if tools is not None else None, tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls, reasoning_effort=reasoning_effort)}
        request = self._http.build_request("POST", "/api/chat", json=body, headers={
            "Idempotency-Key": idempotency_key or str(uuid.uuid4())})
        return self._stream_class(self, self._reading(request))

    def regenerate(self, conversation_id: str, *, model: str | None = None,
                   max_tokens: int | None = None, temperature: float | None = None,
                   options: Mapping[str, Any] | None = None) -> S:
        """A new answer to the conversation's last question (the earlier one is kept)."""
        body = _fields(model=model, max_tokens=max_tokens, temperature=temperature,
                       options=options)
        request = self._http.build_request(
            "POST", f"/api/conversations/{conversation_id}/regenerate", json=body)
        return self._stream_class(self, self._reading(request))

    def stream(self, stream_id: str, *, after: int = 0) -> S:
        """Read an existing stream from after event `after` (0: from the start)."""
        return self._stream_class(self, self._reading(None, stream_id, after))

    def _reading(self, start: httpx.Request | None, stream_id: str | None = None,
                 after: int = 0) -> Reading:
        return Reading(Backoff(self.max_retries, self.backoff), self._resume_request,
                       start, stream_id, after)

    def _resume_request(self, stream_id: str, last_id: int) -> httpx.Request:
        return self._http.build_request(
            "GET", f"/api/streams/{stream_id}",
            headers={"Last-Event-ID": str(last_id)} if last_id else {})

    # --- the plain JSON calls; each twin sends them ----------------------------------

    def _cancel(self, stream_id: str) -> Call[bool]:
        return Call(self._http.build_request("POST", f"/api/streams/{stream_id}/cancel"),
                    lambda body: bool(body["cancelled"]))

    def _conversations(self, limit: int, cursor: str | None) -> Call[dict[str, Any]]:
        params = {"limit": limit, **_fields(cursor=cursor)}
        return Call(self._http.build_request("GET", "/api/conversations", params=params),
                    _as_dict)

    def _conversation(self, conversation_id: str) -> Call[dict[str, Any]]:
        return Call(self._http.build_request("GET", f"/api/conversations/{conversation_id}"),
                    _as_dict)

    def _rename(self, conversation_id: str, title: str) -> Call[dict[str, Any]]:
        return Call(self._http.build_request(
            "PATCH", f"/api/conversations/{conversation_id}", json={"title": title}), _as_dict)

    def _delete(self, conversation_id: str) -> Call[None]:
        return Call(self._http.build_request(
            "DELETE", f"/api/conversations/{conversation_id}"), _nothing)

    def _models(self) -> Call[dict[str, Any]]:
        return Call(self._http.build_request("GET", "/api/models"), _as_dict)
