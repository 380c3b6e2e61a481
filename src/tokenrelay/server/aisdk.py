"""The Vercel AI SDK's UI message stream protocol (v1), for `useChat` (issue 15, part 2).

    POST /api/aisdk/chat                 what DefaultChatTransport sends; streams the answer
    GET  /api/aisdk/chat/{id}/stream     useChat({resume: true}) on mount: 204 when idle
    POST /api/aisdk/chat/{id}/stop       stops the model (useChat's stop() only hangs up)
    GET  /api/aisdk/chat/{id}            the stored chat as UIMessages, for `messages`

Like /v1, this module is only a translating reader of the stream log: one generation,
many encodings. The protocol is `ai`'s `packages/ai/src/ui-message-stream/`
(ui-message-chunks.ts, checked against ai 6.0.325): `data: {json}` blocks, then
`data: [DONE]`, with the header `x-vercel-ai-ui-message-stream: v1`.

Log event -> chunks (`UiMessageStream`):

    start      -> start {messageId: the stored answer's id, messageMetadata}, start-step
    reasoning  -> [text-end], [reasoning-start], reasoning-delta
    delta      -> [reasoning-end], [text-start], text-delta
    tool_call  -> [text-end | reasoning-end], tool-input-start (an index's first piece),
                  tool-input-delta
    done       -> the open part's end, tool-input-available per assembled call (or
                  tool-input-error for arguments that are not JSON), then
                  finish-step + finish {finishReason}; or, when cancelled, abort
    error      -> the open part's end, error {errorText}
    (then)     -> data: [DONE]

The chat `id` the client chose names a conversation of its owner (stored with it,
ChatInput.chat_id). useChat sends the whole history every time: the store's history is
the truth, and of the messages sent only those after the last one the store already
has (an answer's UIMessage id is its stored id, from the `start` chunk) are new.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.errors import InvalidRequest, NotFound
from tokenrelay.events import DELTA, DONE, ERROR, REASONING, START, TOOL_CALL
from tokenrelay.messages import AssistantToolCall, Message
from tokenrelay.server.responses import EventStreamResponse
from tokenrelay.server.schemas import ToolFields
from tokenrelay.service import ChatInput, ChatService, Conversation, Reading, StoredMessage
from tokenrelay.sse import PING, Decoder

router = APIRouter(prefix="/api/aisdk")

#: ui-message-stream-headers.ts (Content-Type and the rest come with EventStreamResponse)
HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
END = b"data: [DONE]\n\n"

#: our finish reasons in the AI SDK's words (FinishReason in ui-message-chunks.ts)
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool-calls"}


# --- requests ------------------------------------------------------------------------


class UIMessage(BaseModel):
    """ui-messages.ts `UIMessage`: parts are kept as sent and read by `_message`."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=200)
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]] = Field(default_factory=list)


class ChatRequestBody(ToolFields):
    """DefaultChatTransport's body (`id`, `messages`, `trigger`, `messageId`) and the
    fields an app adds through the transport's `body`, as on /api/chat."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    messages: list[UIMessage]
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    messageId: str | None = None  # noqa: N815 (the SDK's name)
    model: str | None = Field(None, min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    options: dict[str, Any] = Field(default_factory=dict)


def _is_tool(part: dict[str, Any]) -> bool:
    return str(part.get("type", "")).startswith("tool-") or part.get("type") == "dynamic-tool"


def _tool_name(part: dict[str, Any]) -> str:
    return str(part.get("toolName") or str(part["type"]).removeprefix("tool-"))


def _json_text(value: Any) -> str:
    # json, not orjson: a client's value may hold integers past 64 bits
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _messages(ui: UIMessage) -> list[Message]:
    """One UIMessage as chat messages: its text parts joined; an assistant's tool parts
    as its tool calls, each output that came back as a `tool` message after it."""
    if any(part.get("type") == "file" for part in ui.parts):
        raise InvalidRequest("tokenrelay's models take text: send text parts, not files.",
                             code="unsupported_part")
    text = "".join(str(p.get("text", "")) for p in ui.parts if p.get("type") == "text")
    if ui.role != "assistant":
        return [Message(ui.role, text)]
    tools = [p for p in ui.parts if _is_tool(p) and p.get("toolCallId")]
    calls = tuple(AssistantToolCall(str(p["toolCallId"]), _tool_name(p),
                                    _json_text(p.get("input", {}))) for p in tools)
    reasoning = "".join(str(p.get("text", "")) for p in ui.parts if p.get("type") == "reasoning")
    outputs = [Message("tool", _json_text(p.get("output")), tool_call_id=str(p["toolCallId"]))
               for p in tools if p.get("state") == "output-available"]
    return [Message("assistant", text, tool_calls=calls, reasoning=reasoning), *outputs]


def _new_messages(sent: list[UIMessage], conversation: Conversation | None) -> list[Message]:
    """What the client sent that the store does not have: all of it for a chat the
    store does not know yet, else what follows the last message it knows."""
    if conversation is not None:
        known = {m.id for m in conversation.messages}
        last = max((i for i, m in enumerate(sent) if m.id in known), default=-1)
        sent = sent[last + 1:]
    new = [message for ui in sent for message in _messages(ui)]
    if not new:
        raise InvalidRequest("Nothing new to answer: the last message sent is already "
                             "stored. Send the new user message after it.", code="no_messages")
    return new


# --- the chunk translator ----------------------------------------------------------------


def _chunk(**fields: Any) -> bytes:
    return b"data: " + orjson.dumps(fields) + b"\n\n"


class UiMessageStream:
    """Our stream events in, UI message stream chunks out (the table at the top).
    Pure: no I/O; one per reader, as it tracks which part is open."""

    def __init__(self) -> None:
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", part id)
        self._parts = 0
        #: tool_call index -> (toolCallId, toolName)
        self._tools: dict[int, tuple[str, str]] = {}

    def translate(self, name: str, data: dict[str, Any]) -> bytes:
        if name == DELTA:
            return self._part("text", data["text"])
        if name == REASONING:
            return self._part("reasoning", data["text"])
        if name == TOOL_CALL:
            return self._tool_call(data)
        if name == START:
            metadata = {"conversationId": data["conversation_id"],
                        "streamId": data["stream_id"], "model": data["model"]}
            return (_chunk(type="start", messageId=data["message_id"], messageMetadata=metadata)
                    + _chunk(type="start-step"))
        if name == DONE:
            return self._close() + self._done(data) + END
        if name == ERROR:
            return self._close() + _chunk(type="error", errorText=data["message"]) + END
        return b""  # a reader skips events it does not know (DESIGN.md "Contract")

    def _part(self, kind: str, text: str) -> bytes:
        out = b""
        if self._open is None or self._open[0] != kind:
            out = self._close()
            self._parts += 1
            self._open = (kind, f"{kind}-{self._parts}")
            out += _chunk(type=f"{kind}-start", id=self._open[1])
        return out + _chunk(type=f"{kind}-delta", id=self._open[1], delta=text)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        kind, part_id = self._open
        self._open = None
        return _chunk(type=f"{kind}-end", id=part_id)

    def _tool_call(self, data: dict[str, Any]) -> bytes:
        out = b""
        index = data["index"]
        if "id" in data:  # an index's first piece
            out = self._close()
            self._tools[index] = (data["id"], data.get("name", ""))
            out += _chunk(type="tool-input-start", toolCallId=data["id"],
                          toolName=self._tools[index][1])
        if index not in self._tools or not data.get("arguments"):
            return out
        return out + _chunk(type="tool-input-delta", toolCallId=self._tools[index][0],
                            inputTextDelta=data["arguments"])

    def _done(self, data: dict[str, Any]) -> bytes:
        out = b"".join(_tool_input(call) for call in data.get("tool_calls") or ())
        if data["finish_reason"] == "cancelled":
            # As streamText does when aborted: `abort`, and no finish (stream-text.ts).
            return out + _chunk(type="abort", reason="cancelled")
        metadata = {"usage": data.get("usage"), "finishReason": data["finish_reason"]}
        return out + _chunk(type="finish-step") + _chunk(
            type="finish", finishReason=_FINISH.get(data["finish_reason"], "other"),
            messageMetadata=metadata)


def _tool_input(call: dict[str, str]) -> bytes:
    try:
        arguments = orjson.loads(call["arguments"] or "{}")
    except orjson.JSONDecodeError:
        return _chunk(type="tool-input-error", toolCallId=call["id"], toolName=call["name"],
                      input=call["arguments"], errorText="The arguments are not valid JSON.")
    return _chunk(type="tool-input-available", toolCallId=call["id"], toolName=call["name"],
                  input=arguments)


async def _ui_chunks(reading: Reading) -> AsyncIterator[bytes]:
    """The reading's events as UI message stream chunks. A heartbeat passes on as an SSE
    comment (the SDK's parser skips it): a quiet wait must not look like a dead line."""
    decoder, stream = Decoder(), UiMessageStream()
    async with contextlib.aclosing(reading.chunks) as chunks:
        async for chunk in chunks:
            events = decoder.feed(chunk)
            if not events:
                yield PING
                continue
            out = b"".join(stream.translate(e.event, orjson.loads(e.data)) for e in events)
            if out:
                yield out


def _response(reading: Reading, stream_id: str, conversation_id: str | None) -> Response:
    headers = {**HEADERS, "X-Stream-Id": stream_id}
    if conversation_id is not None:
        headers["X-Conversation-Id"] = conversation_id
    return EventStreamResponse(_ui_chunks(reading), headers=headers)


# --- routes --------------------------------------------------------------------------


def _service(request: Request) -> ChatService:
    return request.app.state.service  # type: ignore[no-any-return]


@router.post("/chat", response_class=EventStreamResponse, status_code=200,
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat(body: ChatRequestBody, request: Request) -> Response:
    """Answer the chat `id`'s new message (or, with `trigger: regenerate-message`, its
    last user message again), streamed as UI message chunks. A client that hangs up
    (useChat's stop()) stops only its reading: POST .../stop stops the model."""
    service, owner = _service(request), request.state.owner
    conversation = await service.chat(body.id, owner)
    chat_input = ChatInput(
        messages=(), model=body.model, max_tokens=body.max_tokens,
        temperature=body.temperature, options=body.options, owner=owner,
        chat_id=body.id, **body.tool_fields(),
    )
    if body.trigger == "regenerate-message":
        if conversation is None:
            raise NotFound(f"No chat {body.id!r} to regenerate an answer in.",
                           code="conversation_not_found")
        started = await service.regenerate(conversation.id, chat_input)
    else:
        started = await service.start(dataclasses.replace(
            chat_input, messages=_new_messages(body.messages, conversation),
            conversation_id=conversation.id if conversation else None))
    return _response(service.follow(started), started.stream_id, started.conversation_id)


@router.get("/chat/{chat_id}/stream", response_class=EventStreamResponse, status_code=200,
            responses={200: {"content": {"text/event-stream": {}}}, 204: {}})
async def resume(chat_id: str, request: Request) -> Response:
    """The chat's answer still generating, from its start (the SDK replays it into a
    fresh message); 204 when none is (http-chat-transport.ts: nothing to resume)."""
    service, owner = _service(request), request.state.owner
    conversation = await service.chat(chat_id, owner)
    stream_id = None if conversation is None else await service.active_stream(
        conversation.id, owner)
    reading = None if stream_id is None else await service.read(stream_id, 0, owner)
    if reading is None or stream_id is None or conversation is None:
        return Response(status_code=204)
    return _response(reading, stream_id, conversation.id)


@router.post("/chat/{chat_id}/stop")
async def stop(chat_id: str, request: Request) -> dict[str, Any]:
    """Stop the answer generating in the chat: its stream ends (`abort`) for every
    reader, and the partial answer is stored as cancelled. `stopped` is false when no
    answer was generating."""
    service, owner = _service(request), request.state.owner
    conversation = await _chat(service, chat_id, owner)
    stream_id = await service.active_stream(conversation.id, owner)
    stopped = stream_id is not None and await service.cancel(stream_id, owner)
    return {"id": chat_id, "stream_id": stream_id, "stopped": stopped}


@router.get("/chat/{chat_id}")
async def messages(chat_id: str, request: Request) -> dict[str, Any]:
    """The stored chat as UIMessages (useChat's `messages`), without the answer still
    generating: GET .../stream brings that one, whole. A chat not stored yet is empty
    (a client names its chats before their first message)."""
    conversation = await _service(request).chat(chat_id, request.state.owner)
    if conversation is None:
        return {"id": chat_id, "conversation_id": None, "messages": []}
    return {"id": chat_id, "conversation_id": conversation.id,
            "messages": _ui_messages(conversation.history())}


async def _chat(service: ChatService, chat_id: str, owner: str) -> Conversation:
    conversation = await service.chat(chat_id, owner)
    if conversation is None:
        raise NotFound(f"No chat {chat_id!r}: POST /api/aisdk/chat starts it.",
                       code="conversation_not_found")
    return conversation


def _ui_messages(stored: list[StoredMessage]) -> list[dict[str, Any]]:
    """Stored messages as UIMessages; a tool message becomes its call's output."""
    out: list[dict[str, Any]] = []
    calls: dict[str, dict[str, Any]] = {}
    for message in stored:
        if message.role == "tool":
            part = calls.get(message.tool_call_id or "")
            if part is not None:
                part.update(state="output-available", output=_loads(message.content))
            continue
        parts: list[dict[str, Any]] = []
        if message.reasoning:
            parts.append({"type": "reasoning", "text": message.reasoning, "state": "done"})
        if message.content:
            parts.append({"type": "text", "text": message.content, "state": "done"})
        for call in message.tool_calls or ():
            part = {"type": f"tool-{call['name']}", "toolCallId": call["id"],
                    "state": "input-available", "input": _loads(call["arguments"])}
            calls[call["id"]] = part
            parts.append(part)
        metadata = {"status": message.status, "model": message.model}
        out.append({"id": message.id, "role": message.role, "parts": parts,
                    **({"metadata": metadata} if message.role == "assistant" else {})})
    return out


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text or "null")
    except orjson.JSONDecodeError:
        return text
