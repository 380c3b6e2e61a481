"""The /api routes: start a chat, read a stream (resume), cancel, read a conversation;
and the operator's: /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from tokenrelay.errors import TokenrelayError
from tokenrelay.server.auth import COOKIE, Keys
from tokenrelay.server.errors import unauthorized
from tokenrelay.server.responses import EventStreamResponse
from tokenrelay.server.schemas import ChatBody, RegenerateBody, RenameBody, SessionBody
from tokenrelay.service import ChatInput, ChatService, Conversation, Reading, StartedStream

router = APIRouter()

#: how long the sign-in cookie lasts
_SESSION_SECONDS = 30 * 24 * 3600


def _service(request: Request) -> ChatService:
    return request.app.state.service  # type: ignore[no-any-return]


def _owner(request: Request) -> str:
    """Who asks: their key's owner (server/guard.py set it), or the one owner when the
    server has no keys."""
    return request.state.owner  # type: ignore[no-any-return]


def _stream_response(reading: Reading, started: StartedStream | None = None,
                     stream_id: str | None = None) -> EventStreamResponse:
    headers = {"X-Stream-Id": started.stream_id if started else str(stream_id)}
    if started is not None and started.conversation_id is not None:
        headers["X-Conversation-Id"] = started.conversation_id
    return EventStreamResponse(reading.chunks, prelude=reading.prelude, headers=headers,
                               tap=reading.tap)


@router.post("/api/chat", response_class=EventStreamResponse, status_code=200,
             responses={200: {"content": {"text/event-stream": {}}}, 204: {}})
async def chat(
    body: ChatBody,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Start an answer and stream it: `start`, a `delta` per token, then `done` or `error`.

    A repeated `Idempotency-Key` returns the stream the first request started instead
    of starting a second answer: from its beginning, or from after `Last-Event-ID`
    when the repeat carries one (a client's automatic retry of the POST, as
    @microsoft/fetch-event-source does)."""
    service = _service(request)
    started = await service.start(ChatInput(
        messages=[m.message() for m in body.messages],
        model=body.model, conversation_id=body.conversation_id,
        max_tokens=body.max_tokens, temperature=body.temperature, options=body.options,
        idempotency_key=idempotency_key, owner=_owner(request), **body.tool_fields(),
    ))
    if started.conversation_id is None and last_event_id is not None:  # a repeat
        after = _resume_point(last_event_id, None)
        reading = await service.read(started.stream_id, after, _owner(request))
        if reading is None:
            return Response(status_code=204, headers={"X-Stream-Id": started.stream_id})
        return _stream_response(reading, started)
    return _stream_response(service.follow(started), started)


def _resume_point(header: str | None, query: str | None) -> int:
    raw = header if header is not None else query
    if raw is None or raw.strip() == "":
        return 0
    try:
        after = int(raw)
    except ValueError:
        raise TokenrelayError(f"Last-Event-ID {raw!r} is not an event id: send the id of the "
                              "last event you received, or none to start from the beginning.",
                              code="invalid_last_event_id") from None
    if after < 0:
        raise TokenrelayError("Last-Event-ID must not be negative.", code="invalid_last_event_id")
    return after


@router.get("/api/streams/{stream_id}", response_class=EventStreamResponse, status_code=200,
            responses={200: {"content": {"text/event-stream": {}}}, 204: {}})
async def read_stream(
    stream_id: str,
    request: Request,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query()] = None,
) -> Response:
    """The stream as an EventSource, from after `Last-Event-ID` (header or query)."""
    after = _resume_point(last_event_id_header, last_event_id)
    reading = await _service(request).read(stream_id, after, _owner(request))
    if reading is None:
        # Nothing left to send. 204 tells an EventSource to stop reconnecting
        # (WHATWG SSE §9.2.3: any status but 200 fails the connection).
        return Response(status_code=204)
    return _stream_response(reading, stream_id=stream_id)


@router.post("/api/streams/{stream_id}/cancel")
async def cancel_stream(stream_id: str, request: Request) -> dict[str, Any]:
    """Stop the generation; its stream ends with `done`, `finish_reason: "cancelled"`.
    `cancelled` is false when the stream had already ended."""
    cancelled = await _service(request).cancel(stream_id, _owner(request))
    return {"stream_id": stream_id, "cancelled": cancelled}


def _summary_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.model,
        "created": conversation.created.isoformat(),
        "updated": conversation.updated.isoformat(),
    }


def _conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        **_summary_json(conversation),
        "messages": [
            {
                "id": m.id, "role": m.role, "content": m.content, "status": m.status,
                "model": m.model, "created": m.created.isoformat(), "stream_id": m.stream_id,
                "reply_to": m.reply_to,
                "error": ({"code": m.error_code, "message": m.error_message}
                          if m.error_code else None),
                "usage": m.usage, "timings": m.timings,
                "reasoning": m.reasoning, "tool_calls": m.tool_calls,
                "tool_call_id": m.tool_call_id,
            }
            for m in conversation.messages
        ],
    }


@router.get("/api/conversations/events", response_class=EventStreamResponse,
            status_code=200, responses={200: {"content": {"text/event-stream": {}}}})
async def conversation_events(
    request: Request,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query()] = None,
) -> Response:
    """This owner's conversation changes, as an EventSource: `conversation` events
    (`change`: created, turn, answered, renamed, deleted; `conversation_id`, `title`,
    `stream_id`), from now or from after `Last-Event-ID`; `reset` when what was missed
    is no longer known (reload the list)."""
    raw = last_event_id_header if last_event_id_header is not None else last_event_id
    after = _resume_point(raw, None) if raw not in (None, "") else None
    reading = _service(request).changes(_owner(request), after)
    return EventStreamResponse(reading.chunks, prelude=reading.prelude)


@router.get("/api/conversations")
async def list_conversations(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    page = await _service(request).conversations(_owner(request), limit=limit, cursor=cursor)
    return {"conversations": [_summary_json(c) for c in page.conversations],
            "next_cursor": page.next_cursor}


@router.get("/api/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, request: Request) -> dict[str, Any]:
    """The conversation with its messages, each with its status and text so far.
    Answers replaced by regenerate stay, as earlier versions with the same `reply_to`."""
    return _conversation_json(
        await _service(request).conversation(conversation_id, _owner(request)))


@router.patch("/api/conversations/{conversation_id}")
async def rename_conversation(conversation_id: str, body: RenameBody,
                              request: Request) -> dict[str, Any]:
    return _conversation_json(
        await _service(request).rename(conversation_id, body.title, _owner(request)))


@router.delete("/api/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, request: Request) -> Response:
    """Delete it and its messages; an answer still streaming in it is stopped first."""
    await _service(request).delete(conversation_id, _owner(request))
    return Response(status_code=204)


@router.post("/api/conversations/{conversation_id}/regenerate",
             response_class=EventStreamResponse, status_code=200,
             responses={200: {"content": {"text/event-stream": {}}}})
async def regenerate(conversation_id: str, request: Request,
                     body: RegenerateBody | None = None) -> Response:
    """A new answer to the last user message, streamed like /api/chat."""
    body = body or RegenerateBody()
    service = _service(request)
    started = await service.regenerate(conversation_id, ChatInput(
        messages=(), model=body.model, max_tokens=body.max_tokens,
        temperature=body.temperature, options=body.options, owner=_owner(request),
    ))
    return _stream_response(service.follow(started), started)


@router.get("/api/models")
async def models(request: Request) -> dict[str, Any]:
    """The models this server can serve now, and the one used when a request names none;
    `labels` gives each a readable name for a picker."""
    service = _service(request)
    models = await service.models()
    return {"default": service.default_model, "models": models,
            "labels": service.labels(models)}


@router.get("/api/session")
async def session(request: Request) -> dict[str, bool]:
    """Whether this server needs an API key, and whether this request carries a valid
    one (the chat page asks this first). Never 401."""
    keys: Keys = request.app.state.keys
    return {"keys_required": keys.required, "signed_in": request.state.owner is not None}


@router.post("/api/session", status_code=204)
async def sign_in(body: SessionBody, request: Request) -> Response:
    """Check a key and open a session: an opaque token in an HttpOnly, SameSite=Strict
    cookie, which the chat page and EventSource send (they cannot send an
    Authorization header). The cookie never holds the key."""
    keys: Keys = request.app.state.keys
    if not keys.required:
        raise TokenrelayError("This server needs no API key.", code="keys_not_required")
    owner = keys.owner(body.key)
    if owner is None:
        return unauthorized("That API key is not valid here.")
    token = await _service(request).open_session(owner)
    response = Response(status_code=204)
    response.set_cookie(COOKIE, token, max_age=_SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.delete("/api/session", status_code=204)
async def sign_out(request: Request) -> Response:
    """End this browser's session, on every host (the store forgets it)."""
    token = request.cookies.get(COOKIE)
    if token:
        await _service(request).close_session(token)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Readiness (its database and Redis) is /readyz."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: what failed, in `checks`"}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database and (with --redis) Redis answer and the server
    is not shutting down; 503 otherwise, with each check's result (details in the log)."""
    checks = await _service(request).readiness()
    failed = [f"{name} ({why})" for name, why in checks.items() if why is not None]
    body: dict[str, Any] = {"status": "not_ready" if failed else "ready",
                            "checks": {name: why or "ok" for name, why in checks.items()}}
    if failed:
        body["error"] = {"code": "not_ready", "message": "Not ready: " + ", ".join(failed)
                         + " failed; the server log says why."}
    return JSONResponse(body, status_code=503 if failed else 200,
                        headers={"Cache-Control": "no-store"})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (tokenrelay/metrics.py): every worker's, from any of them."""
    body, content_type = await _service(request).metrics_exposition(
        request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type,
                                   "Cache-Control": "no-store"})
