"""The servers tokenrelay is measured against (benchmarks/relay.py starts each one
with uvicorn). Each answers the same `POST /api/chat` body tokenrelay does, cuts
`options.text` the way the scripted provider does, and streams one `delta` event
per piece. None of them keeps a log, a store or a task per stream: they show what
a stream costs with less (or no) machinery around it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterable
from typing import Any

from pydantic import BaseModel

try:  # FastAPI's own SSE support (fastapi.sse) arrived in FastAPI 0.135.
    from fastapi.sse import EventSourceResponse as FastAPIEventSourceResponse
    from fastapi.sse import ServerSentEvent
except ImportError:  # pragma: no cover - depends on the installed FastAPI
    FastAPIEventSourceResponse = ServerSentEvent = None  # type: ignore[assignment,misc]

# The scripted provider's cut: after each run of whitespace.
_PIECE = re.compile(r"\S*\s+|\S+")


def _pieces(request: dict[str, Any]) -> list[str]:
    pieces = _PIECE.findall(request["options"]["text"])
    limit = request.get("max_tokens")
    return pieces[:limit] if limit else pieces


# --- bare: no framework, pre-encoded events, one `send` per event --------------------


async def _read_body(receive: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away before sending its body")
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


_COMPACT = (",", ":")
_BARE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ceiling for Python on uvicorn: every event is encoded before the loop, the
    loop only builds the ASGI message and awaits `send`."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    pieces = _pieces(json.loads(await _read_body(receive)))
    events = [
        b"id: %d\nevent: delta\ndata: %s\n\n"
        % (n, json.dumps({"text": p}, separators=_COMPACT).encode())
        for n, p in enumerate(pieces, 1)
    ]
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    for event in events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- paced: bare, with the provider's pace (benchmarks/many.py) ----------------------


async def paced(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`bare` at a model's pace: pre-encoded events, and before each one a sleep of
    `options.delay_ms` (as the scripted provider sleeps before each delta), one `send`
    per event. Many of these at once show what uvicorn itself costs per stream."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    request = json.loads(await _read_body(receive))
    delay = float(request["options"].get("delay_ms", 0)) / 1000
    events = [
        b"id: %d\nevent: delta\ndata: %s\n\n"
        % (n, json.dumps({"text": p}, separators=_COMPACT).encode())
        for n, p in enumerate(_pieces(request), 1)
    ]
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    for event in events:
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- first_event: bare, its first event written at once (benchmarks/ttft.py) ----------

#: The first event `first_event` writes, encoded once at import.
FIRST_EVENT = b'id: 1\nevent: delta\ndata: {"text":"first "}\n\n'


async def first_event(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor for time to first token on loopback + uvicorn: read the request body,
    then at once the response head and a pre-encoded first `delta` (no parsing, no
    encoding before it); the rest of the answer (the request's pieces after the first)
    only after that."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    await send({"type": "http.response.body", "body": FIRST_EVENT, "more_body": True})
    rest = b"".join(
        b"id: %d\nevent: delta\ndata: %s\n\n"
        % (n, json.dumps({"text": p}, separators=_COMPACT).encode())
        for n, p in enumerate(_pieces(json.loads(body))[1:], 2)
    )
    await send({"type": "http.response.body", "body": rest, "more_body": False})


# --- sse-starlette: Starlette + EventSourceResponse, as its README shows ---------------


def _make_sse_starlette_app() -> Any:
    from sse_starlette import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def chat(request: Request) -> EventSourceResponse:
        pieces = _pieces(await request.json())

        async def deltas() -> AsyncIterable[dict[str, str]]:
            for n, piece in enumerate(pieces, 1):
                yield {"event": "delta", "id": str(n), "data": json.dumps({"text": piece})}

        return EventSourceResponse(deltas())

    return Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])


# --- fastapi-sse: FastAPI's own EventSourceResponse (fastapi.sse, FastAPI >= 0.135) ----


class _Message(BaseModel):
    role: str
    content: str


class _ChatBody(BaseModel):
    messages: list[_Message]
    model: str | None = None
    max_tokens: int | None = None
    options: dict[str, Any] = {}


def _make_fastapi_app() -> Any:
    from fastapi import FastAPI

    if FastAPIEventSourceResponse is None:
        raise RuntimeError("this FastAPI has no fastapi.sse (added in 0.135): upgrade FastAPI")
    app = FastAPI()

    # As FastAPI's "Server-Sent Events" docs show: `response_class=EventSourceResponse`,
    # a generator endpoint, one `ServerSentEvent` per event.
    @app.post("/api/chat", response_class=FastAPIEventSourceResponse)
    async def chat(body: _ChatBody) -> AsyncIterable[ServerSentEvent]:
        pieces = _pieces(body.model_dump())
        for n, piece in enumerate(pieces, 1):
            yield ServerSentEvent(data={"text": piece}, event="delta", id=str(n))

    return app


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing this module needs neither framework.
    if name == "sse_starlette_app":
        return _make_sse_starlette_app()
    if name == "fastapi_sse_app":
        return _make_fastapi_app()
    raise AttributeError(name)
