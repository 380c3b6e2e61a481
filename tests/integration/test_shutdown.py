"""Graceful shutdown (issue 8): on SIGTERM running answers get a grace period to
finish, then each ends with an explicit event and its partial answer is stored."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, start_server
from tests.sse_client import iter_events

SHORT = "short " * 60  # 60 deltas at 25 ms: ~1.5 s, within the grace period
LONG = "long " * 1000  # 1,000 deltas at 20 ms: ~20 s, well past it


def _read(url: str, text: str, delay_ms: int, into: list[tuple[float, str, dict]],
          started: threading.Event) -> None:
    body = {"messages": [{"role": "user", "content": text[:5]}], "model": "scripted",
            "options": {"text": text, "delay_ms": delay_ms}}
    with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=60) as response:
        for event in iter_events(response):
            into.append((time.monotonic(), event.event, json.loads(event.data)))
            if len(into) == 3:
                started.set()


def _text(events: list[tuple[float, str, dict]]) -> str:
    return "".join(data["text"] for _, name, data in events if name == "delta")


def test_sigterm_lets_streams_finish_then_ends_the_rest_and_stores_them() -> None:
    database = Path(tempfile.mkdtemp(prefix="tokenrelay-db-")) / "chat.db"
    args = ("--model", "scripted", "--database", f"sqlite+aiosqlite:///{database}")
    port = free_port()
    short: list[tuple[float, str, dict]] = []
    long: list[tuple[float, str, dict]] = []
    with start_server(*args, port=port, env={"TOKENRELAY_SHUTDOWN_GRACE": "4"}) as srv:
        readers = []
        for events, text, delay in ((short, SHORT, 25), (long, LONG, 20)):
            started = threading.Event()
            reader = threading.Thread(target=_read, args=(srv.url, text, delay, events, started))
            reader.start()
            assert started.wait(15)
            readers.append(reader)
        signalled = time.monotonic()
        srv.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"{srv.url}/healthz", timeout=2)
        for reader in readers:
            reader.join(30)
        assert srv.process.wait(15) in (0, -signal.SIGTERM)
        assert "Traceback" not in srv.log()

    # The short answer finished normally, inside the grace period.
    assert short[-1][1] == "done" and short[-1][2]["finish_reason"] == "stop"
    assert _text(short) == SHORT
    # The long one kept streaming through the grace period, then got an explicit end.
    assert long[-1][1] == "error" and long[-1][2]["code"] == "shutdown"
    after_signal = [e for e in long if e[0] > signalled + 1 and e[1] == "delta"]
    assert after_signal, "the long stream stopped at the signal instead of going on"
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
