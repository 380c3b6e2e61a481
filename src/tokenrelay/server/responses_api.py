"""OpenAI's Responses API: `POST /v1/responses`, `GET /v1/responses/{id}` (its state,
or `?stream=true&starting_after=N` to resume its events), `POST /v1/responses/{id}/cancel`.

One more reader of the stream log (DESIGN.md: "one generation, many encodings"): a
response is a tokenrelay stream, and `Translation` turns the log's events into the
Responses events. The translation is a pure function of the log's prefix, so the
`sequence_number`s are the same for every reader, and a resume after N is exactly the
tail of a full read: every reader translates from the log's first event and skips
what it was not asked for.

A response id names its stream and its conversation, `resp_<stream_id>-<conversation_id>`:
its state comes from the log while the log keeps it (the retention time), then from the
stored answer; `previous_response_id` continues its conversation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenrelay.errors import NotFound, TokenrelayError
from tokenrelay.events import DELTA, DONE, ERROR, REASONING, START, TOOL_CALL
from tokenrelay.messages import AssistantToolCall, Message
from tokenrelay.server.responses import EventStreamResponse
from tokenrelay.server.schemas import ReasoningEffort
from tokenrelay.server.v1 import SAMPLING
from tokenrelay.service import ChatInput, ChatService, StoredMessage, Tool
from tokenrelay.sse import PING, Decoder, encode_json

router = APIRouter(prefix="/v1")

#: Responses parameters with no tokenrelay meaning: refused by name, never ignored
UNSUPPORTED = ("prompt", "max_tool_calls", "top_logprobs", "context_management",
               "moderation", "image", "access_programs")
#: accepted and without effect here (`truncation`: the history is always fitted to the
#: model's window, oldest messages first, as "auto" does)
_IGNORED = ("user", "metadata", "service_tier", "safety_identifier", "prompt_cache_key",
            "prompt_cache_retention", "prompt_cache_options", "truncation", "stream_options",
            "background_options")
#: `include` values that ask for nothing tokenrelay would leave out (its reasoning is
#: never encrypted, so there is no encrypted content to add)
_INCLUDABLE = ("reasoning.encrypted_content",)
_PREFIX = "resp_"


def response_id(stream_id: str, conversation_id: str) -> str:
    return f"{_PREFIX}{stream_id}-{conversation_id}"


def parse_response_id(value: str) -> tuple[str, str]:
    """The stream id and the conversation id a response id names."""
    stream_id, dash, conversation_id = value.removeprefix(_PREFIX).partition("-")
    if not value.startswith(_PREFIX) or not dash or not stream_id or not conversation_id:
        raise NotFound(f"No response {value!r}: response ids look like "
                       "resp_st_...-conv_....", code="response_not_found")
    return stream_id, conversation_id


def _unsupported(what: str, hint: str = "") -> TokenrelayError:
    return TokenrelayError(f"Not supported by tokenrelay: {what}.{hint and ' ' + hint}",
                           code="unsupported_parameter")


# --- the translation: log events in, Responses events out ------------------------------


ItemKind = Literal["reasoning", "message", "function_call"]
_ITEM_PREFIX = {"reasoning": "rs", "message": "msg", "function_call": "fc"}


@dataclass(slots=True)
class _Item:
    """One output item as it grows: a reasoning text, a message's text or a call."""

    kind: ItemKind
    id: str
    index: int
    parts: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    status: str = "in_progress"

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def part(self, *, empty: bool = False) -> dict[str, Any]:
        text = "" if empty else self.text
        if self.kind == "reasoning":
            return {"type": "reasoning_text", "text": text}
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def json(self, *, empty: bool = False) -> dict[str, Any]:
        """The item as the API shows it (`empty`: as it is added, before any delta)."""
        if self.kind == "function_call":
            return {"type": "function_call", "id": self.id, "call_id": self.call_id,
                    "name": self.name, "arguments": "" if empty else self.text,
                    "status": self.status}
        content = [] if empty else [self.part()]
        if self.kind == "reasoning":
            return {"type": "reasoning", "id": self.id, "summary": [], "content": content,
                    "encrypted_content": None, "status": self.status}
        return {"type": "message", "id": self.id, "role": "assistant", "status": self.status,
                "content": content}


def _usage(done: dict[str, Any]) -> dict[str, Any]:
    usage = done.get("usage") or {}
    given, made = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    # Reasoning tokens are not counted apart from the answer's (output_tokens has both).
    return {"input_tokens": given,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": made, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": given + made}


def _error(code: str, message: str) -> dict[str, str]:
    """OpenAI's error codes are a closed set: ours is kept in the message."""
    kind = "rate_limit_exceeded" if code == "upstream_rate_limited" else "server_error"
    return {"code": kind, "message": f"{message} [{code}]"}


class Translation:
    """A stream's log events in (`feed`), the Responses events out, numbered from 0,
    and the response as it stands (`response()`). Deterministic: the same log prefix
    always gives the same numbered events (every reader builds its own)."""

    def __init__(self) -> None:
        self.sequence = -1
        self.status = "in_progress"
        self.ended = False
        #: (code, message) of an `error` event
        self.failure: tuple[str, str] | None = None
        self._base: dict[str, Any] | None = None
        self._item_base = ""
        self._items: list[_Item] = []
        #: the reasoning or message item being written
        self._open: _Item | None = None
        #: function calls by their index in the log, open until the end
        self._calls: dict[int, _Item] = {}
        self._usage: dict[str, Any] | None = None
        self._error: dict[str, str] | None = None
        self._incomplete: dict[str, str] | None = None

    @property
    def started(self) -> bool:
        return self._base is not None

    def response(self) -> dict[str, Any]:
        """The response object now (fresh dicts: safe to keep or send)."""
        assert self._base is not None, "no start event yet"
        return {**self._base, "status": self.status, "error": self._error,
                "incomplete_details": self._incomplete,
                "output": [item.json() for item in self._items], "usage": self._usage,
                # Request parameters are not in the log, so no reader could tell them
                # alike: these are OpenAI's required fields at their defaults.
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}

    def output_text(self) -> str:
        return "".join(i.text for i in self._items if i.kind == "message")

    def feed(self, name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.ended or (self._base is None and name != START):
            return out
        if name == START:
            self._start(data, out)
        elif name == REASONING:
            item = self._writing("reasoning", out)
            item.parts.append(data["text"])
            self._emit(out, "response.reasoning_text.delta", item_id=item.id,
                       output_index=item.index, content_index=0, delta=data["text"])
        elif name == DELTA:
            item = self._writing("message", out)
            item.parts.append(data["text"])
            self._emit(out, "response.output_text.delta", item_id=item.id,
                       output_index=item.index, content_index=0, delta=data["text"],
                       logprobs=[])
        elif name == TOOL_CALL:
            self._tool_call(data, out)
        elif name == DONE:
            self._done(data, out)
        elif name == ERROR:
            self._end("incomplete", out)
            self.status, self.failure = "failed", (data["code"], data["message"])
            self._error = _error(data["code"], data["message"])
            self._emit(out, "response.failed", response=self.response())
        return out  # an event it does not know gives none (DESIGN.md: readers skip them)

    def _emit(self, out: list[dict[str, Any]], kind: str, **fields: Any) -> None:
        self.sequence += 1
        out.append({"type": kind, "sequence_number": self.sequence, **fields})

    def _start(self, data: dict[str, Any], out: list[dict[str, Any]]) -> None:
        conversation_id = data["conversation_id"]
        self._base = {"id": response_id(data["stream_id"], conversation_id),
                      "object": "response", "created_at": data.get("created", 0),
                      "model": data["model"], "conversation": {"id": conversation_id}}
        self._item_base = str(data["message_id"]).removeprefix("msg_")
        self._emit(out, "response.created", response=self.response())
        self._emit(out, "response.in_progress", response=self.response())

    def _add(self, kind: ItemKind) -> _Item:
        index = len(self._items)
        item = _Item(kind, f"{_ITEM_PREFIX[kind]}_{self._item_base}_{index}", index)
        self._items.append(item)
        return item

    def _writing(self, kind: ItemKind, out: list[dict[str, Any]]) -> _Item:
        """The open item of `kind`, or a new one after closing the other."""
        if self._open is not None and self._open.kind == kind:
            return self._open
        self._close_open("completed", out)
        item = self._open = self._add(kind)
        self._emit(out, "response.output_item.added", output_index=item.index,
                   item=item.json(empty=True))
        self._emit(out, "response.content_part.added", item_id=item.id,
                   output_index=item.index, content_index=0, part=item.part(empty=True))
        return item

    def _close_open(self, status: str, out: list[dict[str, Any]]) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        item.status = status
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        if item.kind == "reasoning":
            self._emit(out, "response.reasoning_text.done", **where, text=item.text)
        else:
            self._emit(out, "response.output_text.done", **where, text=item.text, logprobs=[])
        self._emit(out, "response.content_part.done", **where, part=item.part())
        self._emit(out, "response.output_item.done", output_index=item.index, item=item.json())

    def _tool_call(self, data: dict[str, Any], out: list[dict[str, Any]]) -> None:
        index = data["index"]
        call = self._calls.get(index)
        if call is None:
            self._close_open("completed", out)
            call = self._calls[index] = self._add("function_call")
            call.call_id = data.get("id") or f"call_{self._item_base}_{index}"
            call.name = data.get("name") or ""
            self._emit(out, "response.output_item.added", output_index=call.index,
                       item=call.json(empty=True))
        elif data.get("name") and not call.name:
            call.name = data["name"]
        if arguments := data.get("arguments"):
            call.parts.append(arguments)
            self._emit(out, "response.function_call_arguments.delta", item_id=call.id,
                       output_index=call.index, delta=arguments)

    def _end(self, status: str, out: list[dict[str, Any]]) -> None:
        """Close every open item (the calls in the order they began)."""
        self.ended = True
        self._close_open(status, out)
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            call.status = status
            self._emit(out, "response.function_call_arguments.done", item_id=call.id,
                       output_index=call.index, arguments=call.text)
            self._emit(out, "response.output_item.done", output_index=call.index,
                       item=call.json())

    def _done(self, data: dict[str, Any], out: list[dict[str, Any]]) -> None:
        finish = data.get("finish_reason")
        self._end("completed" if finish in ("stop", "tool_calls") else "incomplete", out)
        self._usage = _usage(data)
        if finish == "length":
            self.status, self._incomplete = "incomplete", {"reason": "max_output_tokens"}
        elif finish == "cancelled":
            self.status = "cancelled"
        else:
            self.status = "completed"
        # The Responses API has no streamed event for a cancelled response: it ends as
        # one that did not complete, its status saying why.
        kind = "response.completed" if self.status == "completed" else "response.incomplete"
        self._emit(out, kind, response=self.response())


def encode(events: Iterable[dict[str, Any]]) -> bytes:
    """Responses events as SSE: `event:` its type, `id:` its sequence number (last)."""
    return b"".join(encode_json(orjson.dumps(e), e["type"], e["sequence_number"])
                    for e in events)


def _stored_events(start: dict[str, Any], answer: StoredMessage) -> list[tuple[str, dict]]:
    """A stored answer as the log events that would give it (its stream has expired):
    the same translation then shows it. One reasoning item, one message, its calls."""
    events: list[tuple[str, dict]] = [(START, start)]
    if answer.reasoning:
        events.append((REASONING, {"text": answer.reasoning}))
    if answer.content:
        events.append((DELTA, {"text": answer.content}))
    for index, call in enumerate(answer.tool_calls or ()):
        events.append((TOOL_CALL, {"index": index, "id": call["id"], "name": call["name"],
                                   "arguments": call["arguments"]}))
    if answer.status in ("complete", "cancelled"):
        # (the store keeps no finish reason: an answer cut by max_output_tokens shows
        # as completed once its stream has expired)
        finish = ("cancelled" if answer.status == "cancelled"
                  else "tool_calls" if answer.tool_calls else "stop")
        events.append((DONE, {"finish_reason": finish, "usage": answer.usage or {}}))
    elif answer.status in ("error", "interrupted"):
        events.append((ERROR, {"code": answer.error_code or answer.status,
                               "message": answer.error_message or "The answer ended early."}))
    return events


# --- the request: Responses input as tokenrelay messages -------------------------------


class ReasoningBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    effort: ReasoningEffort | None = None
    #: tokenrelay streams the model's own reasoning (reasoning_text), never a summary
    summary: str | None = None


class FunctionTool(BaseModel):
    """A function tool in the Responses format (flattened: no `function` object)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesBody(BaseModel):
    # Extra fields are provider options (the SDK's `extra_body`), as on /v1/chat/completions.
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    stream: bool = False
    store: bool | None = None
    background: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    #: a string in either is a provider option of that name (the scripted provider's
    #: `text` and `reasoning`): OpenAI's own are objects
    reasoning: ReasoningBody | str | None = None
    text: dict[str, Any] | str | None = None
    include: list[str] | None = None


def _text_of(content: Any, where: str, kinds: tuple[str, ...]) -> str:
    """The text of a message's (or a call output's) content: a string or text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TokenrelayError(f"{where}: content must be a string or a list of parts.",
                              code="invalid_request")
    texts: list[str] = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            raise _unsupported(f"{where}.content[{number}] of type {kind!r}",
                               "tokenrelay's models read text: send input_text parts only.")
        texts.append(str(part.get("refusal" if kind == "refusal" else "text", "")))
    return "".join(texts)


def _message(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise TokenrelayError(f"{where}: role must be user, assistant, system or developer, "
                              f"not {role!r}.", code="invalid_request")
    kinds = (("output_text", "refusal", "input_text") if role == "assistant"
             else ("input_text",))
    text = _text_of(item.get("content", ""), where, kinds)
    return Message("system" if role == "developer" else role, text)


def _field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise TokenrelayError(f"{where}: {item.get('type')} needs '{name}'.",
                              code="invalid_request")
    return value


def input_messages(given: str | list[dict[str, Any]]) -> list[Message]:
    """Responses `input` as messages: a string is one user message; `function_call`
    items join the assistant message before them, `function_call_output` items are
    tool messages. Reasoning items are left out (tokenrelay's providers take back
    only their own signed reasoning, which the stored conversation keeps)."""
    if isinstance(given, str):
        return [Message("user", given)]
    messages: list[Message] = []
    for number, item in enumerate(given):
        where, kind = f"input[{number}]", item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = AssistantToolCall(_field(item, "call_id", where), _field(item, "name", where),
                                     str(item.get("arguments") or ""))
            if messages and messages[-1].role == "assistant":
                messages[-1] = dataclasses.replace(
                    messages[-1], tool_calls=(*messages[-1].tool_calls, call))
            else:
                messages.append(Message("assistant", "", tool_calls=(call,)))
        elif kind == "function_call_output":
            output = _text_of(item.get("output", ""), where, ("input_text", "output_text"))
            messages.append(Message("tool", output,
                                    tool_call_id=_field(item, "call_id", where)))
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise _unsupported(f"{where}: item_reference",
                               "Send the items themselves, or previous_response_id.")
        else:
            raise _unsupported(f"{where}: input items of type {kind!r}")
    return messages


def _tools(tools: list[dict[str, Any]] | None) -> tuple[Tool, ...]:
    builtin = [str(t.get("type")) for t in tools or () if t.get("type") != "function"]
    if builtin:
        raise _unsupported(f"built-in tools {', '.join(builtin)}",
                           "tokenrelay calls only your functions: "
                           '{"type": "function", "name", "parameters"}.')
    parsed = []
    for tool in tools or ():
        if "function" in tool and "name" not in tool:
            raise TokenrelayError("The Responses API takes function tools flattened: "
                                  '{"type": "function", "name", "description", "parameters"}'
                                  ", not nested under 'function'.", code="invalid_request")
        try:
            parsed.append(FunctionTool.model_validate(tool))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'tool'}: {e['msg']}"
                                 for e in exc.errors())
            raise TokenrelayError(f"Invalid function tool {tool.get('name')!r}: {problems}.",
                                  code="invalid_request") from None
    return tuple(Tool(t.name, t.description, t.parameters) for t in parsed)


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    # json, not orjson: a client's value may hold integers past 64 bits (found by fuzzing)
    raise _unsupported(f"tool_choice {json.dumps(choice, default=str)[:200]}",
                       'Send "auto", "none", "required" or {"type": "function", "name"}.')


def _refuse_unsupported(body: ResponsesBody, extra: dict[str, Any]) -> None:
    refused = [name for name in UNSUPPORTED if extra.get(name) not in (None, False)]
    if refused:
        raise _unsupported(", ".join(refused), "Leave them out.")
    text = body.text if isinstance(body.text, dict) else {}
    text_format = text.get("format") or {"type": "text"}
    kind = text_format.get("type") if isinstance(text_format, dict) else text_format
    if kind != "text":
        raise _unsupported(f"text.format {kind!r} (structured output)")
    included = [name for name in body.include or () if name not in _INCLUDABLE]
    if included:
        raise _unsupported(f"include {', '.join(included)}")
    if body.previous_response_id and body.conversation:
        raise TokenrelayError("Send previous_response_id or conversation, not both.",
                              code="invalid_request")


async def _continued(body: ResponsesBody, service: ChatService, owner: str) -> str | None:
    """The conversation a request continues: previous_response_id's (which must be its
    latest answer, and ended: tokenrelay conversations do not branch), or `conversation`."""
    if isinstance(body.conversation, dict):
        return str(body.conversation.get("id") or "") or None
    if body.conversation is not None:
        return body.conversation
    previous = body.previous_response_id
    if previous is None:
        return None
    stream_id, conversation_id = parse_response_id(previous)
    missing = NotFound(f"No response {previous!r} to continue: it was not stored "
                       "(store: false), or its conversation was deleted.",
                       code="previous_response_not_found")
    try:
        conversation = await service.conversation(conversation_id, owner)
    except NotFound:
        raise missing from None
    answer = next((m for m in conversation.messages if m.stream_id == stream_id), None)
    if answer is None:
        raise missing
    if answer.status == "streaming":
        raise TokenrelayError(f"Response {previous!r} is still in progress: wait for its end "
                              "(GET /v1/responses/{id}), or cancel it.",
                              code="previous_response_in_progress")
    latest = conversation.messages[-1]
    if latest is not answer:
        newer = (f" its latest is {response_id(latest.stream_id, conversation_id)!r}."
                 if latest.stream_id else "")
        raise TokenrelayError(f"Response {previous!r} is not the latest of its conversation, "
                              "and tokenrelay conversations do not branch: continue from "
                              f"the latest response.{newer}", code="previous_response_not_latest")
    return conversation_id


async def _chat_input(body: ResponsesBody, service: ChatService, owner: str) -> ChatInput:
    extra = dict(body.model_extra or {})
    _refuse_unsupported(body, extra)
    model = body.model or service.default_model
    candidates = {k: v for k, v in extra.items() if k not in UNSUPPORTED and k not in _IGNORED}
    candidates.update({k: v for k, v in (("text", body.text), ("reasoning", body.reasoning))
                       if isinstance(v, str)})
    options = await service.options_for(model, candidates, optional=SAMPLING)
    return ChatInput(
        messages=input_messages(body.input), model=model,
        conversation_id=await _continued(body, service, owner),
        max_tokens=body.max_output_tokens, temperature=body.temperature, options=options,
        owner=owner, persist=body.store is not False, tools=_tools(body.tools),
        tool_choice=_tool_choice(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        reasoning_effort=(body.reasoning.effort if isinstance(body.reasoning, ReasoningBody)
                          else None),
        instructions=body.instructions,
    )


# --- readers ---------------------------------------------------------------------------


async def _translated(chunks: AsyncIterator[bytes], translation: Translation,
                      until: int | None = None) -> AsyncIterator[list[dict[str, Any]] | None]:
    """The Responses events of each chunk of the log (None for a heartbeat), to the
    stream's end, or to log event `until` and no further (a snapshot)."""
    decoder = Decoder()
    async with contextlib.aclosing(chunks) as source:
        async for chunk in source:
            events = decoder.feed(chunk)
            if not events:
                yield None
                continue
            out: list[dict[str, Any]] = []
            for event in events:
                out.extend(translation.feed(event.event, orjson.loads(event.data)))
                if until is not None and event.id.isdigit() and int(event.id) >= until:
                    yield out
                    return
            yield out


async def _read_all(chunks: AsyncIterator[bytes], until: int | None = None) -> Translation:
    """The translation of the log, to its end or to event `until`."""
    translation = Translation()
    async with contextlib.aclosing(_translated(chunks, translation, until)) as batches:
        async for _ in batches:
            pass
    return translation


async def _replay(service: ChatService, stream_id: str, owner: str, *,
                  to_end: bool) -> Translation:
    """The response of a retained stream: as it stands now, or (`to_end`) at its end.
    Raises NotFound when the log no longer has the stream."""
    info = await service.stream(stream_id, owner)
    reading = await service.read(stream_id, 0, owner)
    if reading is None:  # an empty stream that has ended: nothing to show
        raise NotFound(f"Stream {stream_id!r} has no events.", code="response_not_found")
    until = None if to_end or info.finished else info.last_seq
    return await _read_all(reading.chunks, until)


async def _stored(service: ChatService, value: str, owner: str) -> Translation:
    """A response whose stream has expired, from its stored answer."""
    stream_id, conversation_id = parse_response_id(value)
    missing = NotFound(f"No response {value!r}.", code="response_not_found")
    try:
        conversation = await service.conversation(conversation_id, owner)
    except NotFound:
        raise missing from None
    answer = next((m for m in conversation.messages if m.stream_id == stream_id), None)
    if answer is None:
        raise missing
    start = {"stream_id": stream_id, "conversation_id": conversation_id,
             "message_id": answer.id, "model": answer.model or "",
             "created": int(answer.created.timestamp())}
    translation = Translation()
    for name, data in _stored_events(start, answer):
        translation.feed(name, data)
    return translation


async def _state(service: ChatService, value: str, owner: str, *, to_end: bool = False,
                 cancel: bool = False) -> Translation:
    stream_id, _ = parse_response_id(value)
    try:
        if cancel:
            await service.cancel(stream_id, owner)
        return await _replay(service, stream_id, owner, to_end=to_end)
    except NotFound as exc:
        if exc.code != "stream_not_found":
            raise
    return await _stored(service, value, owner)


def _json(translation: Translation, headers: dict[str, str] | None = None) -> Response:
    # `output_text` as the SDKs compute it, for clients that read the JSON themselves
    body = {**translation.response(), "output_text": translation.output_text()}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _upstream_status(code: str) -> int:
    return {"upstream_rate_limited": 429, "upstream_timeout": 504}.get(code, 502)


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


async def _streamed(service: ChatService, stream_id: str, chunks: AsyncIterator[bytes], *,
                    after: int = -1, stop_on_hangup: bool = False) -> AsyncIterator[bytes]:
    """The Responses events after sequence number `after`, as SSE bytes."""
    ended = False
    try:
        async with contextlib.aclosing(_translated(chunks, Translation())) as batches:
            async for events in batches:
                if events is None:
                    yield PING  # a quiet wait must not look like a dead connection
                    continue
                ended = ended or any(e["type"] in _TERMINAL for e in events)
                wanted = [e for e in events if e["sequence_number"] > after]
                if wanted:
                    yield encode(wanted)
    finally:
        if stop_on_hangup and not ended:
            # As on /v1/chat/completions: an OpenAI client that hangs up means "stop"
            # (a background response goes on, and is cancelled only explicitly).
            service.stop_if_unread(stream_id)



# --- routes ----------------------------------------------------------------------------


@router.post("/responses")
async def create_response(
    body: ResponsesBody, request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    service: ChatService = request.app.state.service
    owner = request.state.owner
    chat = dataclasses.replace(await _chat_input(body, service, owner),
                               idempotency_key=idempotency_key)
    started = await service.start(chat)
    stream_id = started.stream_id
    headers = {"X-Stream-Id": stream_id}
    if body.stream:
        reading = service.follow(started)
        return EventStreamResponse(
            _streamed(service, stream_id, reading.chunks, stop_on_hangup=not body.background),
            headers=headers)
    if body.background:
        return _json(await _replay(service, stream_id, owner, to_end=False), headers)
    translation = await _read_all(service.follow(started).chunks)
    if translation.failure is not None:
        code, message = translation.failure
        raise TokenrelayError(message, code=code, status=_upstream_status(code))
    if not translation.ended:
        raise TokenrelayError("The stream ended without an answer.", code="stream_incomplete",
                              status=502)
    return _json(translation, headers)


@router.get("/responses/{response_id}")
async def get_response(
    response_id: str, request: Request, stream: bool = False,
    starting_after: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The response's state; with `stream=true`, its events after `starting_after`
    (or the Last-Event-ID header), while its stream is retained."""
    service: ChatService = request.app.state.service
    owner = request.state.owner
    if not stream:
        return _json(await _state(service, response_id, owner))
    stream_id, _ = parse_response_id(response_id)
    if starting_after is None:
        starting_after = (int(last_event_id) if last_event_id and last_event_id.isdigit()
                          else -1)
    try:
        reading = await service.read(stream_id, 0, owner)
    except NotFound as exc:
        raise NotFound(f"{exc.message} Its events can no longer be streamed: GET it without "
                       "stream=true for its state.", code="response_stream_expired") from None
    if reading is None:
        raise NotFound(f"Stream {stream_id!r} has no events.", code="response_not_found")
    return EventStreamResponse(_streamed(service, stream_id, reading.chunks,
                                         after=starting_after),
                               headers={"X-Stream-Id": stream_id})


@router.post("/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request) -> Response:
    """Stop the model (the partial answer is kept) and answer the response at its end;
    one that had already ended is answered as it ended."""
    service: ChatService = request.app.state.service
    return _json(await _state(service, response_id, request.state.owner, to_end=True,
                              cancel=True))
