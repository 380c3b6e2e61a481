"""tokenrelay read by the SSE clients Python users run (issue 15, part 1): httpx-sse and
sseclient-py see exactly the events the server sent, no spurious empty ones (the
`retry:` rides in the first event's block, heartbeats have no blank line after them),
and a repeated POST with its Idempotency-Key and Last-Event-ID resumes instead of
replaying."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import sseclient
from httpx_sse import connect_sse

from tests.servers import Server, start_server
from tests.sse_client import chat

TEXT = "Grüße 🌊\nline two\ttab \"quoted\" " * 5


@pytest.fixture(scope="module")
def beating() -> Iterator[Server]:
    """A server whose heartbeat comes every 50 ms: pings between the deltas."""
    with start_server("--model", "scripted", "--database", "memory",
                      env={"TOKENRELAY_HEARTBEAT": "0.05"}) as running:
        yield running


def _body(**options: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
            "options": {"text": TEXT, **options}}


def test_httpx_sse_sees_only_real_events_between_heartbeats(beating: Server) -> None:
    with httpx.Client(base_url=beating.url, timeout=60) as http, \
            connect_sse(http, "POST", "/api/chat", json=_body(delay_ms=120)) as source:
        events = list(source.iter_sse())
    assert all(e.data for e in events), [e.event for e in events if not e.data]
    names = [e.event for e in events]
    assert names[0] == "start" and names[-1] == "done"
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == TEXT
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert events[0].retry == 1000  # the reconnection time, in the first event's block


def test_sseclient_py_reads_the_same_events(beating: Server) -> None:
    response = httpx.post(f"{beating.url}/api/chat", json=_body(), timeout=60)
    client = sseclient.SSEClient(iter([response.content]))
    events = [e for e in client.events()]
    assert all(e.data for e in events)
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == TEXT


def test_a_quiet_stream_sends_heartbeat_lines_never_followed_by_a_blank_line(
        beating: Server) -> None:
    raw = httpx.post(f"{beating.url}/api/chat", json=_body(delay_ms=120), timeout=60).content
    assert b": ping\n" in raw
    assert b": ping\n\n" not in raw and not raw.startswith(b"retry: 1000\n\n")
    blocks = [b for b in raw.replace(b": ping\n", b"").split(b"\n\n") if b]
    assert all(block.splitlines()[-1].startswith(b"id: ") for block in blocks), \
        "id is each event's last field"


def test_a_retried_post_with_last_event_id_resumes_after_it(server: Server) -> None:
    headers = {"Idempotency-Key": "fetch-event-source-retry-1"}
    first = chat(server.url, _body())
    # (a fresh key: the same request sent twice, the second after reading up to id 5)
    whole = httpx.post(f"{server.url}/api/chat", json=_body(), headers=headers, timeout=60)
    assert whole.status_code == 200
    again = httpx.post(f"{server.url}/api/chat", json=_body(),
                       headers={**headers, "Last-Event-ID": "5"}, timeout=60)
    ids = [int(line[4:]) for line in again.text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(6, len(first.events) + 1)), "no replay, no loss"
    assert again.headers["x-stream-id"] == whole.headers["x-stream-id"]
    done = httpx.post(f"{server.url}/api/chat", json=_body(),
                      headers={**headers, "Last-Event-ID": str(len(first.events))}, timeout=60)
    assert done.status_code == 204  # nothing after the end: a client stops there
