"""The fast path of POST /api/chat (server/fastpath.py) answers as FastAPI does: the
same requests, sent to an app with it and one without, get the same answers, errors
word for word. Real uvicorn, in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from tokenrelay.config import Settings
from tokenrelay.server import create_app, routes
from tokenrelay.sse import Decoder
from tests.integration.test_detached_bodies import serving

CHAT = {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
        "options": {"text": "one two three"}}


@asynccontextmanager
async def both() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    fast = create_app(Settings(model="scripted", database="memory"))
    slow = create_app(Settings(model="scripted", database="memory", fast_path=False))
    async with serving(fast) as fast_url, serving(slow) as slow_url:
        async with httpx.AsyncClient(base_url=fast_url, timeout=30) as a, \
                httpx.AsyncClient(base_url=slow_url, timeout=30) as b:
            yield a, b


def _comparable(response: httpx.Response) -> tuple[int, str, Any]:
    """Status, content type, and the body with what differs between two servers (ids,
    times) left out."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        events = []
        for event in Decoder().feed(response.content):
            data = orjson.loads(event.data)
            events.append((event.id, event.event, {k: v for k, v in data.items() if k in (
                "text", "finish_reason", "length", "code", "message", "model", "title")}))
        return response.status_code, kind, events
    return response.status_code, kind, response.content and response.json()


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fast path's calls of the route (FastAPI holds its own reference)."""
    calls: list[int] = []
    chat = routes.chat

    async def counted(*args: Any) -> Any:
        calls.append(1)
        return await chat(*args)

    monkeypatch.setattr(routes, "chat", counted)
    return calls


CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("a chat", {"content-type": "application/json"}, orjson.dumps(CHAT)),
    ("with a charset", {"content-type": "application/json; charset=utf-8"}, orjson.dumps(CHAT)),
    ("no messages", {"content-type": "application/json"},
     orjson.dumps({**CHAT, "messages": []})),
    ("a field it does not know", {"content-type": "application/json"},
     orjson.dumps({**CHAT, "stream": True})),
    ("not JSON", {"content-type": "application/json"}, b"{messages: ["),
    ("an unknown model", {"content-type": "application/json"},
     orjson.dumps({**CHAT, "model": "nope/x"})),
    ("a bad provider option", {"content-type": "application/json"},
     orjson.dumps({**CHAT, "options": {"delay": 1}})),
    ("no content type", {}, orjson.dumps(CHAT)),
    ("an Idempotency-Key too long", {"content-type": "application/json",
                                     "idempotency-key": "k" * 201}, orjson.dumps(CHAT)),
]


@pytest.mark.parametrize("name,headers,body", CASES, ids=[c[0] for c in CASES])
async def test_the_fast_path_answers_as_fastapi_does(name: str, headers: dict[str, str],
                                                     body: bytes) -> None:
    async with both() as (fast, slow):
        a = await fast.post("/api/chat", content=body, headers=headers)
        b = await slow.post("/api/chat", content=body, headers=headers)
    assert _comparable(a) == _comparable(b), name
    if a.status_code == 200:
        assert a.headers["x-stream-id"] and a.headers["x-conversation-id"]


async def test_a_chat_takes_the_fast_path_and_an_error_does_not(fast_calls: list[int]) -> None:
    async with both() as (fast, _):
        ok = await fast.post("/api/chat", json=CHAT)
        refused = await fast.post("/api/chat", json={**CHAT, "messages": []})
    assert ok.status_code == 200 and b"event: done" in ok.content
    assert refused.status_code == 422
    assert len(fast_calls) == 1  # the valid one; FastAPI worded the refusal


async def test_a_repeated_key_resumes_after_last_event_id_on_both() -> None:
    async with both() as (fast, slow):
        answers = []
        for client in (fast, slow):
            key = {"Idempotency-Key": "repeat-1"}
            first = await client.post("/api/chat", json=CHAT, headers=key)
            resumed = await client.post("/api/chat", json=CHAT,
                                        headers={**key, "Last-Event-ID": "2"})
            past_end = await client.post("/api/chat", json=CHAT,
                                         headers={**key, "Last-Event-ID": "99"})
            bad = await client.post("/api/chat", json=CHAT,
                                    headers={**key, "Last-Event-ID": "two"})
            assert resumed.headers["x-stream-id"] == first.headers["x-stream-id"]
            answers.append([_comparable(r) for r in (resumed, past_end, bad)])
    assert answers[0] == answers[1]
    resumed_events, past_end, bad = answers[0]
    assert [e[0] for e in resumed_events[2]][0] == "3"
    assert past_end[0] == 204
    assert bad[0] == 400 and bad[2]["error"]["code"] == "invalid_last_event_id"
