"""`POST /api/chat`, the request that starts every answer, without the framework's
per-request machinery (issue 16: "the request path").

Framework fence (STYLE.md "Framework internals are touched only behind a fence").
FastAPI routes each request through its router, solves the route's dependencies (the
body, two headers and the request, each through a field model of its own) and opens
its exit stacks: in-process, that was over a third of the CPU a started stream costs
(benchmarks/RESULTS.md "Issue 16", the request path). `FastChat` takes `POST /api/chat`
first:

- a JSON body that `ChatBody` accepts, with headers FastAPI would accept, goes straight
  to the route's own function (`routes.chat`), with a Starlette `Request` of the same
  scope; what it returns is sent as FastAPI would send it;
- anything else (a body `ChatBody` refuses, a header out of bounds, another content
  type) goes to FastAPI untouched, the body read so far replayed to it, so every error
  is FastAPI's, word for word; a refusal the route raises (TokenrelayError) is answered
  by the app's own handler;
- it sits inside Guard (keys, rate limits and the body limit apply first) and does not
  wrap `send`, so bodies stay detached (server/responses.py);
- the OpenAPI schema still comes from the FastAPI route, which stays registered.

`TOKENRELAY_FAST_PATH=0` turns it off. tests/integration/test_fast_path.py sends the
same requests both ways and checks the answers agree, errors included.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenrelay.errors import TokenrelayError
from tokenrelay.server import routes
from tokenrelay.server.errors import refusal
from tokenrelay.server.schemas import ChatBody

#: FastAPI's own bound on the Idempotency-Key header (routes.chat's Header(max_length))
_KEY_LENGTH = 200


class FastChat:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != "/api/chat"
                or scope["method"] != "POST"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if headers is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away while sending it
            return
        replay = _Replay(body, receive)
        try:
            chat = ChatBody.model_validate_json(body)
        except ValidationError:
            await self.app(scope, replay, send)  # FastAPI words the error
            return
        request = Request(scope, replay)
        try:
            response = await routes.chat(chat, request, *headers)
        except TokenrelayError as exc:
            response = refusal(request, exc)
        await response(scope, replay, send)


def _headers(scope: Scope) -> tuple[str | None, str | None] | None:
    """(Idempotency-Key, Last-Event-ID), the first of each as FastAPI takes them; None
    when the request is not one for this path (not JSON, or a header FastAPI would
    refuse or read otherwise)."""
    content_type = key = last = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"idempotency-key" and key is None:
            key = value
        elif name == b"last-event-id" and last is None:
            last = value
    if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
        return None
    try:
        idempotency_key = None if key is None else key.decode("latin-1")
        last_event_id = None if last is None else last.decode("latin-1")
    except UnicodeDecodeError:
        return None
    if idempotency_key is not None and len(idempotency_key) > _KEY_LENGTH:
        return None
    return idempotency_key, last_event_id


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (Guard has bounded it); None if the client disconnected."""
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


class _Replay:
    """`receive` for what comes after: the body once, then the server's own."""

    __slots__ = ("body", "receive")

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body: bytes | None = body
        self.receive = receive

    async def __call__(self) -> Message:
        body, self.body = self.body, None
        if body is not None:
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.receive()
