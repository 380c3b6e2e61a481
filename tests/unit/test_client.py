"""The client's decisions, without a server: the reading fed captured SSE bytes, the
resend and resume decisions, the length check, and the streams' replay (through
httpx.MockTransport, which counts what would have gone on the wire)."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tokenrelay.client import (
    APIError, AsyncChatStream, AsyncClient, ChatStream, Client, StreamFailed, StreamInterrupted,
    StreamMismatch,
)
from tokenrelay.client._reading import Backoff, Reading, may_resend
from tokenrelay.events import Delta, Done, Error, Start

SRC = Path(__file__).resolve().parents[2] / "src" / "tokenrelay"

# Response bodies captured from `tokenrelay serve --model scripted` (POST /api/chat with
# options {"text": "Hello, wörld 🌊"}, then {"text": "a b c", "fail_after": 2}).
ANSWER = (
    b'retry: 1000\nevent: start\ndata: {"stream_id":"st_6d44f648034b0ea54ca1a23d","conversation_id":"conv_eaa9cdce99e86c99eda28358","message_id":"msg_7332f35e301d76ff6f100281","model":"scripted","title":"hi"}\nid: 1\n\n'
    b'event: delta\ndata: {"text":"Hello, "}\nid: 2\n\n'
    b'event: delta\ndata: {"text":"w\xc3\xb6rld "}\nid: 3\n\n'
    b'event: delta\ndata: {"text":"\xf0\x9f\x8c\x8a"}\nid: 4\n\n'
    b'event: done\ndata: {"finish_reason":"stop","usage":{"input_tokens":1,"output_tokens":3},"timings":{"ttft_ms":1.019,"tokens_per_s":10611.71,"total_ms":1.208},"length":14,"reasoning_length":0,"tool_calls":[],"messages_dropped":0}\nid: 5\n\n'
)
TEXT = "Hello, wörld 🌊"  # 14 code points: what `length` counts (UTF-16 would say 15)
STREAM_ID = "st_6d44f648034b0ea54ca1a23d"
FAILED = (
    b'retry: 1000\nevent: start\ndata: {"stream_id":"st_450df856cde466ccd8860ea7","conversation_id":"conv_5ca976b7c5d5faf2554d0801","message_id":"msg_5290f2b8324d2daa51aa7a1d","model":"scripted","title":"hi"}\nid: 1\n\n'
    b'event: delta\ndata: {"text":"a "}\nid: 2\n\n'
    b'event: delta\ndata: {"text":"b "}\nid: 3\n\n'
    b'event: error\ndata: {"code":"upstream_error","message":"scripted failure after 2 deltas","length":4,"reasoning_length":0}\nid: 4\n\n'
)
#: the end of ANSWER's event 3, so that a body cut there stops inside no event
CUT_AT = ANSWER.index(b"id: 3\n\n") + len(b"id: 3\n\n")

BASE = "http://relay.test"


def _resume(stream_id: str, last_id: int) -> httpx.Request:
    return httpx.Request("GET", f"{BASE}/api/streams/{stream_id}",
                         headers={"Last-Event-ID": str(last_id)})


def _reading(start: httpx.Request | None = None, *, stream_id: str | None = None,
             after: int = 0, max_retries: int = 3) -> Reading:
    return Reading(Backoff(max_retries, 0.1), _resume, start, stream_id, after)


def _fed(reading: Reading, body: bytes, size: int) -> list:
    return [e for i in range(0, len(body), size) for e in reading.feed(body[i:i + size])]


def _post(**headers: str) -> httpx.Request:
    return httpx.Request("POST", f"{BASE}/api/chat", json={}, headers=headers)


# --- the reading, fed bytes ------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(ANSWER)])
def test_bytes_split_anywhere_give_each_event_once(size: int) -> None:
    reading = _reading(_post())
    events = _fed(reading, ANSWER, size)
    assert [type(e) for e in events] == [Start, Delta, Delta, Delta, Done]
    assert [e.id for e in events] == [1, 2, 3, 4, 5]
    assert reading.text() == TEXT and isinstance(reading.end, Done)
    assert reading.stream_id == STREAM_ID
    assert reading.conversation_id == "conv_eaa9cdce99e86c99eda28358"
    assert reading.events == events, "everything handed on is kept, for a replay"


def test_events_seen_before_a_reconnect_are_not_handed_on_again() -> None:
    reading = _reading(_post())
    _fed(reading, ANSWER[:CUT_AT], 5)
    reading.opened(httpx.Response(200))  # the resumed connection, which starts over
    again = list(reading.feed(ANSWER))
    assert [e.id for e in again] == [4, 5]
    assert reading.text() == TEXT, "no delta doubled"


def test_an_event_a_newer_server_added_is_skipped() -> None:
    body = ANSWER[:CUT_AT] + b'event: sparkle\ndata: {"x": 1}\n\n' + ANSWER[CUT_AT:]
    reading = _reading(_post())
    assert [e.id for e in _fed(reading, body, 4)] == [1, 2, 3, 4, 5]
    assert reading.text() == TEXT


def test_a_text_that_does_not_add_up_to_done_length_raises() -> None:
    body = ANSWER.replace(b'"length":14', b'"length":15')
    reading = _reading(_post())
    with pytest.raises(StreamMismatch, match="received 14 characters, the server sent 15"):
        _fed(reading, body, 9)
    assert reading.end is None and reading.last_id == 4, "the end is not taken"


def test_a_reader_that_starts_in_the_middle_cannot_check_the_length() -> None:
    reading = _reading(stream_id=STREAM_ID, after=3)
    events = _fed(reading, ANSWER, 11)
    assert [e.id for e in events] == [4, 5] and isinstance(reading.end, Done)


# --- what to send next, and whether to send it again ------------------------------------


def test_the_start_request_goes_until_a_response_accepts_it_then_the_resume() -> None:
    start = _post(**{"Idempotency-Key": "k"})
    reading = _reading(start)
    assert reading.next_request() is start
    reading.opened(httpx.Response(200, headers={"X-Stream-Id": STREAM_ID}))
    assert reading.stream_id == STREAM_ID
    _fed(reading, ANSWER[:CUT_AT], 13)
    resume = reading.next_request()
    assert (resume.method, resume.url.path) == ("GET", f"/api/streams/{STREAM_ID}")
    assert resume.headers["Last-Event-ID"] == "3"


@pytest.mark.parametrize(("request_", "error", "resend"), [
    (_resume(STREAM_ID, 3), httpx.ReadError("reset"), True),
    (_post(**{"Idempotency-Key": "k"}), httpx.ReadError("reset"), True),
    (_post(), httpx.ReadError("reset"), False),  # regenerate: it may have started one
    (_post(), httpx.ConnectError("refused"), True),  # it never reached the server
    (_post(), httpx.ConnectTimeout("slow"), True),
])
def test_what_may_be_sent_again(request_: httpx.Request, error: httpx.TransportError,
                                resend: bool) -> None:
    assert may_resend(request_, error) is resend


def test_a_request_without_response_is_sent_again_with_backoff_then_given_up() -> None:
    request = _post()  # no Idempotency-Key: only an error before it went out is safe
    reading = _reading(request, max_retries=3)
    delays = [reading.after_send_error(request, httpx.ConnectError("refused"), attempt)
              for attempt in range(3)]
    assert delays == pytest.approx([0.1, 0.2, 0.4])
    with pytest.raises(StreamInterrupted, match="no response"):
        reading.after_send_error(request, httpx.ConnectError("refused"), 3)
    with pytest.raises(StreamInterrupted):
        reading.after_send_error(request, httpx.ReadError("reset"), 0)


def test_only_a_proxys_busy_statuses_are_tried_again() -> None:
    reading = _reading(_post(), max_retries=2)
    assert [reading.after_status(503, a) for a in range(3)] == [0.1, 0.2, None]
    assert reading.after_status(502, 0) == 0.1 and reading.after_status(504, 0) == 0.1
    assert reading.after_status(500, 0) is None and reading.after_status(429, 0) is None
    assert reading.after_status(200, 0) is None


def test_a_refusal_is_an_api_error_with_the_servers_code() -> None:
    body = {"error": {"code": "stream_not_found", "message": "No stream st_x."}}
    with pytest.raises(APIError) as refused:
        _reading(stream_id="st_x").opened(httpx.Response(404, json=body))
    assert (refused.value.status, refused.value.code) == (404, "stream_not_found")
    with pytest.raises(APIError) as proxy:
        _reading(_post()).opened(httpx.Response(500, text="<html>Bad gateway</html>"))
    assert proxy.value.code == "http_error" and "Bad gateway" in proxy.value.message


def test_a_204_on_resume_ends_the_reading() -> None:
    with pytest.raises(StreamInterrupted, match="no events after the last one seen"):
        _reading(stream_id=STREAM_ID, after=9).opened(httpx.Response(204))


def test_cuts_are_resumed_with_backoff_and_progress_restores_the_retries() -> None:
    reading = _reading(_post(), max_retries=2)
    with pytest.raises(StreamInterrupted) as early:
        reading.after_cut(httpx.ReadError("reset"))  # before any stream id: nothing to resume
    assert early.value.stream_id is None
    reading.opened(httpx.Response(200, headers={"X-Stream-Id": STREAM_ID}))
    assert [reading.after_cut(httpx.ReadError("reset")) for _ in range(2)] == [0.1, 0.2]
    _fed(reading, ANSWER[:CUT_AT], 50)  # events came: the next cuts start over
    assert reading.after_cut(httpx.ReadError("reset")) == 0.1
    reading.after_cut(httpx.ReadError("reset"))
    with pytest.raises(StreamInterrupted) as late:
        reading.after_cut(httpx.ReadError("reset"))
    assert (late.value.stream_id, late.value.last_event_id) == (STREAM_ID, 3)


# --- the streams: replay, resume, through a transport that counts ----------------------


class _Server:
    """A MockTransport handler: ANSWER for the POST (cut at `cut` bytes once, if set),
    and the stream from after Last-Event-ID for a GET."""

    def __init__(self, cut: int | None = None):
        self.cut = cut
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            body = ANSWER if self.cut is None else ANSWER[:self.cut]
            self.cut = None
            return httpx.Response(200, content=body, headers={"X-Stream-Id": STREAM_ID})
        return httpx.Response(200, content=ANSWER)  # the reading skips what it saw

    def sent(self) -> list[tuple[str, str | None]]:
        return [(r.method, r.headers.get("Last-Event-ID")) for r in self.requests]


def test_text_after_iterating_replays_and_sends_nothing() -> None:
    server = _Server()
    with Client(BASE, transport=httpx.MockTransport(server)) as client:
        stream = client.chat("hi")
        events = list(stream)
        assert stream.text() == TEXT
        assert list(stream) == events, "a second loop gives the same events"
    assert server.sent() == [("POST", None)], "one request, whatever was asked after"
    assert stream.received == TEXT and stream.end == events[-1] and stream.model == "scripted"


def test_an_attached_stream_iterated_then_text_returns_the_text() -> None:
    server = _Server()
    with Client(BASE, transport=httpx.MockTransport(server)) as client:
        stream = client.stream(STREAM_ID)
        assert [e.id for e in stream] == [1, 2, 3, 4, 5]
        assert stream.text() == TEXT
    assert server.sent() == [("GET", None)]


def test_a_cut_stream_resumes_from_the_last_event_once() -> None:
    server = _Server(cut=CUT_AT)
    with Client(BASE, backoff=0, transport=httpx.MockTransport(server)) as c:
        assert c.chat("hi").text() == TEXT
    assert server.sent() == [("POST", None), ("GET", "3")]


def test_a_loop_left_early_goes_on_from_where_it_stopped_not_from_a_new_answer() -> None:
    server = _Server()
    with Client(BASE, transport=httpx.MockTransport(server)) as client:
        stream = client.chat("hi")
        for event in stream:
            if isinstance(event, Delta):
                break
        assert stream.received == "Hello, " and stream.end is None
        assert [e.id for e in stream] == [1, 2, 3, 4, 5]
    assert server.sent() == [("POST", None), ("GET", "2")]


def test_an_error_end_raises_on_every_text_and_keeps_the_partial_answer() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=FAILED))
    with Client(BASE, transport=transport) as client:
        stream = client.chat("hi")
        for _ in range(2):
            with pytest.raises(StreamFailed) as failed:
                stream.text()
            assert failed.value.text == "a b " and failed.value.error.code == "upstream_error"
    assert isinstance(stream.end, Error) and stream.received == "a b "


async def test_the_async_stream_replays_the_same_way() -> None:
    server = _Server(cut=CUT_AT)

    async def handle(request: httpx.Request) -> httpx.Response:
        return server(request)

    async with AsyncClient(BASE, backoff=0,
                           transport=httpx.MockTransport(handle)) as client:
        stream = client.chat("hi")
        events = [event async for event in stream]
        assert await stream.text() == TEXT
        assert [event async for event in stream] == events
    assert server.sent() == [("POST", None), ("GET", "3")]


# --- the shape ---------------------------------------------------------------------------


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_both_clients_have_the_same_methods_and_both_streams_the_same_state() -> None:
    methods = {"chat", "regenerate", "stream", "cancel", "conversations", "conversation",
               "rename", "delete", "models"}
    assert _public(Client) == methods | {"close"}  # HTTPX's names: close() and aclose()
    assert _public(AsyncClient) == methods | {"aclose"}
    assert _public(ChatStream) == _public(AsyncChatStream)
    for name in methods | {"__init__"}:
        assert _signature(getattr(Client, name)) == _signature(getattr(AsyncClient, name)), name
    for name in methods - {"chat", "regenerate", "stream"}:  # these send nothing yet
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def _signature(function: Callable[..., object]) -> list[str]:
    return list(inspect.signature(function).parameters)


#: what the client side may import from tokenrelay (DESIGN.md: it installs without the
#: server's stack); its own private modules aside
_CLIENT_SIDE = {"tokenrelay.events", "tokenrelay.sse", "tokenrelay.messages", "tokenrelay.client"}


@pytest.mark.parametrize("package", ["client", "terminal"])
def test_the_client_side_imports_nothing_of_the_server(package: str) -> None:
    for path in (SRC / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tokenrelay"):
                module = node.module or ""
                allowed = _CLIENT_SIDE | {f"tokenrelay.{package}"}
                assert any(module == a or module.startswith(a + ".") for a in allowed), \
                    f"{path.name} imports {module}"
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, json, tokenrelay.{package}; "
                               "print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout
    server_side = {m for m in json.loads(loaded) if m.split(".")[0] in {
        "pydantic", "fastapi", "starlette", "uvicorn", "sqlalchemy", "llama_cpp", "openai",
        "anthropic"} or m.startswith(("tokenrelay.providers", "tokenrelay.server"))}
    assert not server_side
