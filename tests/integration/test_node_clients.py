"""tokenrelay read by the Node SSE clients users run (issue 15, part 1): the `eventsource`
package, eventsource-parser, @microsoft/fetch-event-source and the openai SDK, each a
small script in tests/interop/ that prints what it received as JSON.

Each sees the text it asked for whole (multi-byte UTF-8, newlines, tabs, quotes), only
real events between 50 ms heartbeats, ids one by one; `eventsource` and
fetch-event-source also resume by themselves through a proxy that cuts the connection
mid-stream, with nothing lost or doubled, and stop at the server's 204. The Python
clients' twin is test_sse_clients.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.proxy import cutting_proxy
from tests.servers import ROOT, Server, start_server

INTEROP = ROOT / "tests" / "interop"
TEXT = "Grüße 🌊\nline two\ttab \"quoted\" " * 5
#: the event names an /api stream has (an event without one would be `message`)
NAMES = {"start", "delta", "reasoning", "tool_call", "done", "error"}
#: the scripts give up after this long and print what they had; the subprocess after more
DEADLINE_MS = 30_000
#: body bytes after which the proxy cuts each of a client's first connections: a few
#: events each, so the stream (100 ms a delta) spans every cut and the reconnections
CUTS = [300, 260, 340]


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (INTEROP / "node_modules" / "eventsource").exists():
        pytest.skip("The Node clients are not installed: `make interop-clients` "
                    "(make test does this)")
    return found


@pytest.fixture(scope="module")
def beating() -> Iterator[Server]:
    """A server whose heartbeat comes every 50 ms: pings between the deltas."""
    with start_server("--model", "scripted", "--database", "memory",
                      env={"TOKENRELAY_HEARTBEAT": "0.05"}) as running:
        yield running


def _run(node: str, script: str, **config: Any) -> dict[str, Any]:
    done = subprocess.run([node, script, json.dumps({"deadline_ms": DEADLINE_MS, **config})],
                          cwd=INTEROP, capture_output=True, text=True,
                          timeout=DEADLINE_MS / 1000 + 30)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _body(**options: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
            "options": {"text": TEXT, **options}}


def _assert_whole_stream(events: list[dict[str, Any]]) -> None:
    """start, the deltas, done; every event named and with data; ids 1, 2, 3, ..."""
    assert [e for e in events if not e["data"] or e["event"] not in NAMES] == []
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-1] == "done", names
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1)), \
        "no event lost, none doubled"
    assert "".join(json.loads(e["data"])["text"] for e in events if e["event"] == "delta") == TEXT


def _stream_id(server: Server, **options: object) -> str:
    """Start an answer and hang up at once (the answer goes on: README, "Resume")."""
    with httpx.stream("POST", f"{server.url}/api/chat", json=_body(**options),
                      timeout=30) as response:
        assert response.status_code == 200
        return response.headers["x-stream-id"]


def test_eventsource_reads_a_stream_then_stops_at_the_204(node: str, beating: Server) -> None:
    stream_id = _stream_id(beating, delay_ms=40)
    result = _run(node, "eventsource.mjs", url=f"{beating.url}/api/streams/{stream_id}")
    _assert_whole_stream(result["events"])
    # The stream ended, so the client reconnected once, after the last id, and got 204:
    assert result["statuses"] == [200, 204]
    assert result["resumed_from"] == [None, str(len(result["events"]))]
    assert result["failures"][-1]["code"] == 204 and result["failures"][-1]["closed"]


def test_eventsource_resumes_through_cut_connections(node: str, beating: Server) -> None:
    stream_id = _stream_id(beating, delay_ms=100)
    with cutting_proxy(int(beating.url.rsplit(":", 1)[1])) as proxy:
        result = _run(node, "eventsource.mjs", url=f"{proxy.url}/api/streams/{stream_id}",
                      cuts=CUTS)
    assert proxy.severed == len(CUTS), "every planned cut landed mid-stream"
    _assert_whole_stream(result["events"])
    assert result["statuses"][-1] == 204 and set(result["statuses"][:-1]) == {200}
    resumed = [int(i) for i in result["resumed_from"][1:]]
    assert resumed == sorted(set(resumed)) and resumed[-1] == len(result["events"]), \
        "each reconnection sends the last id it saw"
    assert result["failures"][-1]["code"] == 204


def test_fetch_event_source_sees_only_real_events(node: str, beating: Server) -> None:
    result = _run(node, "fetch-event-source.mjs", url=f"{beating.url}/api/chat",
                  body=_body(delay_ms=120), headers={})
    _assert_whole_stream(result["events"])
    assert result["connections"] == 1 and result["ended"] == "closed", result["failures"]


def test_fetch_event_source_retries_its_post_and_resumes(node: str, beating: Server) -> None:
    # Its retry is the same POST with `last-event-id`; with the Idempotency-Key the
    # server continues the first request's stream after that id, not a fresh replay.
    with cutting_proxy(int(beating.url.rsplit(":", 1)[1])) as proxy:
        result = _run(node, "fetch-event-source.mjs", url=f"{proxy.url}/api/chat",
                      body=_body(delay_ms=100), cuts=CUTS,
                      headers={"Idempotency-Key": "node-fetch-event-source-resume"})
    assert proxy.severed == len(CUTS)
    assert result["connections"] >= len(CUTS) + 1, result["failures"]
    _assert_whole_stream(result["events"])
    resumed = [int(i) for i in result["resumed_from"][1:]]
    assert resumed == sorted(set(resumed)) and 0 < resumed[0], result["resumed_from"]
    assert result["ended"] in ("closed", "204")


def test_eventsource_parser_reads_events_split_anywhere(node: str, beating: Server) -> None:
    # Through the proxy, uncut: it forwards 256 bytes at a time, so reads split events
    # and UTF-8 characters wherever they fall.
    with cutting_proxy(int(beating.url.rsplit(":", 1)[1])) as proxy:
        result = _run(node, "eventsource-parser.mjs", url=f"{proxy.url}/api/chat",
                      body=_body(delay_ms=120))
    _assert_whole_stream(result["events"])
    assert result["retries"] == [1000], "the reconnection time, read once"
    assert result["comments"] > 0, "heartbeats came between the events"


def test_openai_sdk_streams_the_answer_it_gives_whole(node: str, beating: Server) -> None:
    with cutting_proxy(int(beating.url.rsplit(":", 1)[1])) as proxy:
        result = _run(node, "openai.mjs", base_url=f"{proxy.url}/v1", model="scripted",
                      messages=[{"role": "user", "content": "hi"}],
                      extra={"text": TEXT, "delay_ms": 60})
    chunks = result["chunks"]
    assert [c for c in chunks if c.get("object") != "chat.completion.chunk"] == []
    assert len({c["id"] for c in chunks}) == 1 and all(c["choices"] for c in chunks)
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == result["complete"]["text"] == TEXT
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert result["complete"]["finish_reason"] == "stop"
