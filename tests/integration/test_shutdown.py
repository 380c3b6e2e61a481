"""Graceful shutdown (issue 8): on SIGTERM running answers get a grace period to
finish, then each ends with an explicit event and its partial answer is stored."""

from __future__ import annotations

import itertools
import json
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import HTTP_SERVERS, free_port, start_server
from tests.sse_client import iter_events

GRACE = 10  # TOKENRELAY_SHUTDOWN_GRACE for this test, in seconds
SHORT = "short " * 60  # 60 deltas at 50 ms: ~3 s, well within the grace period
LONG = "long " * 10_000  # 10,000 deltas at 20 ms: minutes, far past it
#: seconds a test waits for what it watches: generous, so two busy cores cannot fail it
DEADLINE = 30.0

# One sequence across the reader threads: which event came first, not when.
_order = itertools.count()


def _read(url: str, text: str, delay_ms: int, into: list[tuple[int, str, dict]],
          started: threading.Event) -> None:
    body = {"messages": [{"role": "user", "content": text[:5]}], "model": "scripted",
            "options": {"text": text, "delay_ms": delay_ms}}
    with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=60) as response:
        for event in iter_events(response):
            into.append((next(_order), event.event, json.loads(event.data)))
            if len(into) == 3:
                started.set()


def _text(events: list[tuple[int, str, dict]]) -> str:
    return "".join(data["text"] for _, name, data in events if name == "delta")


def _refuses(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_sigterm_lets_streams_finish_then_ends_the_rest_and_stores_them(http_server: str) -> None:
    database = Path(tempfile.mkdtemp(prefix="tokenrelay-db-")) / "chat.db"
    args = ("--model", "scripted", "--database", f"sqlite+aiosqlite:///{database}",
            "--server", http_server)
    port = free_port()
    short: list[tuple[int, str, dict]] = []
    long: list[tuple[int, str, dict]] = []
    with start_server(*args, port=port, env={"TOKENRELAY_SHUTDOWN_GRACE": str(GRACE)}) as srv:
        readers = []
        for events, text, delay in ((short, SHORT, 50), (long, LONG, 20)):
            started = threading.Event()
            reader = threading.Thread(target=_read, args=(srv.url, text, delay, events, started))
            reader.start()
            assert started.wait(DEADLINE)
            readers.append(reader)
        assert short[-1][1] == "delta", "the short answer was still streaming at the signal"
        srv.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + DEADLINE
        while not _refuses(srv.url):
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        assert long[-1][1] == "delta", "new connections refused while streams still run"
        for reader in readers:
            reader.join(GRACE + DEADLINE)
            assert not reader.is_alive()
        assert srv.process.wait(DEADLINE) in (0, -signal.SIGTERM)
        assert "Traceback" not in srv.log()

    # The short answer finished normally, inside the grace period.
    assert short[-1][1] == "done" and short[-1][2]["finish_reason"] == "stop"
    assert _text(short) == SHORT
    # The long one kept streaming through the grace period (past the short one's end,
    # which came after the signal), then got an explicit end.
    assert long[-1][1] == "error" and long[-1][2]["code"] == "shutdown"
    short_done = short[-1][0]
    assert [e for e in long if e[0] > short_done and e[1] == "delta"], \
        "the long stream stopped when the short one ended instead of going on"
    streamed = _text(long)
    assert 0 < len(streamed) < len(LONG)

    with start_server(*args, port=port) as srv:
        listed = httpx.get(f"{srv.url}/api/conversations", timeout=10).json()
        answers = {}
        for summary in listed["conversations"]:
            conversation = httpx.get(f"{srv.url}/api/conversations/{summary['id']}",
                                     timeout=10).json()
            answers[conversation["messages"][0]["content"]] = conversation["messages"][-1]
    assert answers["short"]["status"] == "complete" and answers["short"]["content"] == SHORT
    assert answers["long "]["status"] == "interrupted"
    assert answers["long "]["content"] == streamed  # nothing generated is lost
    assert answers["long "]["error"]["code"] == "shutdown"
