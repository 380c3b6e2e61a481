"""OpenAI-compatible API: POST /v1/chat/completions (streaming and not), GET /v1/models.

Each call is a tokenrelay stream like any other (resumable and cancellable through
/api/streams/{X-Stream-Id}); this module is only a translating reader of the log.
Calls are stored as conversations unless the body says `"store": false`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.errors import InvalidRequest, TokenrelayError
from tokenrelay.events import DELTA, DONE, ERROR, REASONING, START, TOOL_CALL
from tokenrelay.messages import Message
from tokenrelay.server.responses import EventStreamResponse
from tokenrelay.server.schemas import ToolCallBody, ToolFields
from tokenrelay.service import ChatInput, ChatService, StartedStream
from tokenrelay.sse import PING, Decoder

router = APIRouter(prefix="/v1")

#: OpenAI parameters with no tokenrelay meaning: refused by name, never ignored
#: (`functions`/`function_call` are the legacy form of `tools`: send `tools`).
UNSUPPORTED = ("functions", "function_call", "logprobs", "top_logprobs", "logit_bias",
               "audio", "prediction", "web_search_options", "response_format", "modalities")
#: OpenAI parameters passed to providers whose options have them, dropped for others.
SAMPLING = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
#: accepted and without effect here
_IGNORED = ("user", "metadata", "service_tier", "store")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class V1Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallBody] | None = None
    tool_call_id: str | None = None

    def message(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidRequest("A 'tool' message needs the 'tool_call_id' it answers.",
                                 code="invalid_request")
        return Message("system" if self.role == "developer" else self.role, _text(self),
                       tool_calls=tuple(c.call() for c in self.tool_calls or ()),
                       tool_call_id=self.tool_call_id)


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionBody(ToolFields):
    # Extra fields are provider options (the SDK's `extra_body`).
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[V1Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    store: bool | None = None


def _text(message: V1Message) -> str:
    if isinstance(message.content, list):
        return "".join(part.text for part in message.content)
    return message.content or ""


def _refuse_unsupported(body: CompletionBody, extra: dict[str, Any]) -> None:
    refused = [name for name in UNSUPPORTED if extra.get(name) not in (None, False)]
    if extra.get("response_format") in ({"type": "text"},):
        refused.remove("response_format")
    if refused:
        raise TokenrelayError(f"Not supported by tokenrelay: {', '.join(refused)}. "
                              "Leave them out (for functions, send tools).", code="unsupported_parameter")
    if body.n not in (None, 1):
        raise TokenrelayError("n must be 1: tokenrelay streams one answer per request.",
                              code="unsupported_parameter")


async def _chat_input(body: CompletionBody, service: ChatService) -> ChatInput:
    """The OpenAI body as a tokenrelay request: extra fields are provider options
    (the SDK's `extra_body`); OpenAI's sampling parameters pass where the provider
    has them."""
    extra = dict(body.model_extra or {})
    _refuse_unsupported(body, extra)
    candidates = {k: v for k, v in extra.items() if k not in UNSUPPORTED and k not in _IGNORED}
    options = await service.options_for(body.model, candidates, optional=SAMPLING)
    return ChatInput(
        messages=[m.message() for m in body.messages],
        model=body.model, max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature, options=options, persist=body.store is not False,
        **body.tool_fields(),
    )


def _usage(done: dict[str, Any]) -> dict[str, int]:
    usage = done.get("usage") or {}
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _tool_call_delta(data: dict[str, Any]) -> dict[str, Any]:
    """A tool_call event as OpenAI streams it: id, type and name on an index's first
    piece, then only the next part of the arguments."""
    function: dict[str, Any] = {"arguments": data.get("arguments", "")}
    call: dict[str, Any] = {"index": data["index"]}
    if "id" in data:
        call.update(id=data["id"], type="function")
        function = {"name": data.get("name", ""), **function}
    call["function"] = function
    return call


def _answer_message(text: str, reasoning: str, calls: list[dict[str, str]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""),
                               "refusal": None}
    if calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
            "name": c["name"], "arguments": c["arguments"]}} for c in calls]
    if reasoning:
        message["reasoning_content"] = message["reasoning"] = reasoning
    return message


def _upstream_status(code: str) -> int:
    return {"upstream_rate_limited": 429, "upstream_timeout": 504}.get(code, 502)


class _Translator:
    """Our events in, OpenAI `chat.completion.chunk`s out."""

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool):
        self._base = {"id": completion_id, "object": "chat.completion.chunk",
                      "created": created, "model": model}
        self._include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self._base, "choices": [choice]}) + b"\n\n"

    def translate(self, name: str, data: dict[str, Any]) -> bytes:
        if name == DELTA:
            return self._chunk({"content": data["text"]})
        if name == REASONING:
            # Both names: DeepSeek's API (and vLLM before 2025) send `reasoning_content`,
            # vLLM and Ollama now `reasoning`; clients read one or the other.
            return self._chunk({"reasoning_content": data["text"], "reasoning": data["text"]})
        if name == TOOL_CALL:
            return self._chunk({"tool_calls": [_tool_call_delta(data)]})
        if name == START:
            return self._chunk({"role": "assistant", "content": ""})
        if name == DONE:
            out = self._chunk({}, data["finish_reason"])
            if self._include_usage:
                out += b"data: " + orjson.dumps(
                    {**self._base, "choices": [], "usage": _usage(data)}) + b"\n\n"
            return out + b"data: [DONE]\n\n"
        if name == ERROR:
            error = {"message": data["message"], "type": "upstream_error", "param": None,
                     "code": data["code"]}
            return b"data: " + orjson.dumps({"error": error}) + b"\n\n"
        return b""


async def _events(service: ChatService,
                  started: StartedStream) -> AsyncIterator[list[tuple[str, dict]]]:
    """Batches of decoded events; an empty batch for a heartbeat (pass it on: a quiet
    wait in a queue must not look like a dead connection to the client)."""
    decoder = Decoder()
    async with contextlib.aclosing(service.follow(started).chunks) as chunks:
        async for chunk in chunks:
            yield [(e.event, orjson.loads(e.data)) for e in decoder.feed(chunk)]


@router.post("/chat/completions")
async def chat_completions(
    body: CompletionBody, request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    service: ChatService = request.app.state.service
    chat = dataclasses.replace(await _chat_input(body, service),
                               idempotency_key=idempotency_key, owner=request.state.owner)
    started = await service.start(chat)
    created = int(time.time())
    completion_id = f"chatcmpl-{started.stream_id}"
    headers = {"X-Stream-Id": started.stream_id}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        translator = _Translator(completion_id, created, body.model, include_usage)
        return EventStreamResponse(_chunks(service, started, translator), headers=headers)
    return await _complete(service, started, completion_id, created, body.model, headers)


async def _chunks(service: ChatService, started: StartedStream,
                  translator: _Translator) -> AsyncIterator[bytes]:
    ended = False
    try:
        async with contextlib.aclosing(_events(service, started)) as batches:
            async for events in batches:
                if not events:
                    yield PING
                    continue
                ended = ended or any(name in (DONE, ERROR) for name, _ in events)
                yield b"".join(translator.translate(name, data) for name, data in events)
    finally:
        if not ended:
            # An OpenAI client that hangs up means "stop" (that is how their API
            # behaves, and how tokenrelay's own `openai` provider cancels); our reader
            # has detached by now (aclosing).
            service.stop_if_unread(started.stream_id)


async def _complete(service: ChatService, started: StartedStream, completion_id: str,
                    created: int, model: str, headers: dict[str, str]) -> Response:
    parts: list[str] = []
    thoughts: list[str] = []
    async for events in _events(service, started):
        for name, data in events:  # (a heartbeat is an empty batch)
            if name == DELTA:
                parts.append(data["text"])
            elif name == REASONING:
                thoughts.append(data["text"])
            elif name == ERROR:
                raise TokenrelayError(data["message"], code=data["code"],
                                      status=_upstream_status(data["code"]))
            elif name == DONE:
                answer = {
                    "id": completion_id, "object": "chat.completion", "created": created,
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": data["finish_reason"],
                                 "logprobs": None,
                                 "message": _answer_message("".join(parts), "".join(thoughts),
                                                            data.get("tool_calls") or [])}],
                    "usage": _usage(data),
                }
                return Response(orjson.dumps(answer), media_type="application/json",
                                headers=headers)
    raise InvalidRequest("The stream ended without an answer.", code="stream_incomplete",
                         status=502)


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    service: ChatService = request.app.state.service
    names = await service.models()
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "tokenrelay"} for name in names
    ]}
