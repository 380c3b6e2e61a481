"""`tokenrelay serve --server granian` (issue 16's evaluation), started for real: what
depends on the HTTP server works as under uvicorn. Event streams go out as they come
(granian sends an event stream's head at once, other bodies whole), a dropped
connection resumes after its last id, a cancel ends the stream, and a reader that
leaves mid-stream is noticed: counted as a disconnect, and with --abandon-after its
generation stops; a TLS proxy's X-Forwarded-Proto is read as uvicorn reads it. The
SIGTERM drain and `--workers` are test_shutdown.py's and test_metrics.py's, run on
both servers; TESTS_HTTP_SERVER=granian runs every other real server on granian."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.servers import Server, start_server
from tests.sse_client import chat, iter_events, resume
from tests.polling import until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("granian") is None,
                                reason="granian is not installed: pip install 'tokenrelay[granian]'")

TEXT = "Streams outlive\nconnections.\n\n- resume\n- cancel\r\n  with  spaces " * 4
#: 10,000 deltas: minutes at the delays below, unless a cancel or an abandon stops them
LONG = "word " * 10_000
#: seconds a test waits for what it polls: generous, so two busy cores cannot fail it
DEADLINE = 30.0


@pytest.fixture(scope="module")
def granian() -> Iterator[Server]:
    with start_server("--server", "granian", "--model", "scripted",
                      "--database", "memory") as running:
        yield running


def _body(**options: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
            "options": options}


def _disconnects(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("tokenrelay_reader_disconnects_total "):
            return float(line.split()[1])
    return 0.0


def _leave_after(url: str, body: dict[str, object], count: int) -> tuple[str, str, list[int], str]:
    """Read `count` events, then drop the connection; returns (stream_id,
    conversation_id, ids, text)."""
    text, ids = "", []
    with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=30) as response:
        assert response.headers["server"] == "granian"
        for event in iter_events(response):
            ids.append(int(event.id))
            if event.event == "delta":
                text += json.loads(event.data)["text"]
            if len(ids) == count:
                break
        return response.headers["x-stream-id"], response.headers["x-conversation-id"], ids, text


def test_a_chat_streams_start_deltas_done_with_consecutive_ids(granian: Server) -> None:
    with httpx.Client(base_url=granian.url, timeout=60) as http, \
            connect_sse(http, "POST", "/api/chat", json=_body(text=TEXT)) as source:
        headers = source.response.headers
        events = list(source.iter_sse())
    assert headers["server"] == "granian", "served by granian, not uvicorn"
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache" and "content-encoding" not in headers
    names = [e.event for e in events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"delta"}
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == TEXT
    assert events[0].retry == 1000


def test_each_delta_arrives_while_the_answer_is_still_generating(granian: Server) -> None:
    # 40 deltas 50 ms apart: were the body buffered, the first would come with the last.
    body = _body(text="tick " * 40, delay_ms=50)
    with httpx.stream("POST", f"{granian.url}/api/chat", json=body, timeout=60) as response:
        for event in iter_events(response):
            if event.event == "delta":
                break
        conversation_id = response.headers["x-conversation-id"]
        answer = httpx.get(f"{granian.url}/api/conversations/{conversation_id}",
                           timeout=10).json()["messages"][-1]
        assert answer["status"] == "streaming", "the first delta came only at the end"


def test_resume_after_a_dropped_connection_gives_the_rest(granian: Server) -> None:
    stream_id, _, ids, text = _leave_after(granian.url, _body(text=TEXT, delay_ms=5), 7)

    rest = resume(granian.url, stream_id, after=ids[-1])

    assert rest.status == 200
    assert rest.ids == list(range(ids[-1] + 1, ids[-1] + 1 + len(rest.events)))
    assert text + rest.text == TEXT
    assert rest.last[0] == "done"
    assert resume(granian.url, stream_id, after=rest.ids[-1]).status == 204


def test_cancel_ends_the_stream_and_keeps_the_partial_answer(granian: Server) -> None:
    seen = []
    with httpx.stream("POST", f"{granian.url}/api/chat", json=_body(text=LONG, delay_ms=20),
                      timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        deadline = time.monotonic() + DEADLINE
        for event in iter_events(response):
            seen.append(event)
            if len(seen) == 4:
                cancelled = httpx.post(f"{granian.url}/api/streams/{stream_id}/cancel",
                                       timeout=10).json()
                assert cancelled["cancelled"] is True
            if event.event in ("done", "error"):
                break
            assert time.monotonic() < deadline, "the stream went on after the cancel"
    done = json.loads(seen[-1].data)
    assert seen[-1].event == "done" and done["finish_reason"] == "cancelled"
    text = "".join(json.loads(e.data)["text"] for e in seen if e.event == "delta")
    assert 0 < len(text) < len(LONG) and done["length"] == len(text)


def test_a_reader_that_leaves_mid_stream_is_counted_as_a_disconnect(granian: Server) -> None:
    before = _disconnects(granian.url)
    stream_id, _, _, _ = _leave_after(granian.url, _body(text=LONG, delay_ms=20), 3)
    # The server notices the closed connection (the body's writer gets
    # `http.disconnect`), lets go of the stream and counts the reader as gone.
    until(lambda: _disconnects(granian.url) == before + 1, "counted as a disconnect")
    httpx.post(f"{granian.url}/api/streams/{stream_id}/cancel", timeout=10)


def test_a_stream_its_reader_left_stops_after_abandon_after() -> None:
    with start_server("--server", "granian", "--model", "scripted", "--database", "memory",
                      "--abandon-after", "0.5") as srv:
        # Minutes long, unless the server sees that nobody reads it any more.
        stream_id, conversation_id, _, _ = _leave_after(srv.url, _body(text=LONG, delay_ms=10), 2)

        def ended() -> dict[str, Any] | None:
            answer = httpx.get(f"{srv.url}/api/conversations/{conversation_id}",
                               timeout=10).json()["messages"][-1]
            return None if answer["status"] == "streaming" else answer  # type: ignore[no-any-return]

        stored = until(ended, "abandoned")
        assert stored["status"] == "cancelled"
        assert stored["content"].startswith("word ") and len(stored["content"]) < len(LONG)
        rest = resume(srv.url, stream_id, after=2)
        assert rest.last[0] == "done" and rest.last[1]["finish_reason"] == "cancelled"
        assert "Traceback" not in srv.log()


def test_the_other_routes_answer_whole(granian: Server) -> None:
    # Not event streams: granian sends these with their body, not chunk by chunk.
    received = chat(granian.url, _body(text="hello there"))
    conversation_id = received.named("start")[0]["conversation_id"]
    stored = httpx.get(f"{granian.url}/api/conversations/{conversation_id}", timeout=10)
    assert stored.status_code == 200
    assert stored.json()["messages"][-1]["content"] == "hello there"
    missing = httpx.get(f"{granian.url}/api/conversations/conv_nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"]
    page = httpx.get(granian.url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_behind_a_tls_proxy_the_session_cookie_is_secure() -> None:
    # granian reads no proxy headers; the runner adds uvicorn's, trusting 127.0.0.1.
    with start_server("--server", "granian", "--model", "scripted", "--database", "memory",
                      env={"TOKENRELAY_API_KEYS": "key-a"}) as srv:
        direct = httpx.post(f"{srv.url}/api/session", json={"key": "key-a"}, timeout=10)
        proxied = httpx.post(f"{srv.url}/api/session", json={"key": "key-a"}, timeout=10,
                             headers={"X-Forwarded-Proto": "https"})
    assert direct.status_code == proxied.status_code == 204
    assert "secure" not in direct.headers["set-cookie"].lower()
    assert "secure" in proxied.headers["set-cookie"].lower()
