"""The `openai` provider against a real OpenAI-compatible server: llama-cpp-python's
own, serving the bundled GGUF."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import Server, free_port, start_llama_server, start_server
from tests.sse_client import chat, iter_events

pytestmark = pytest.mark.model

KEY = "sk-test-key"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with start_llama_server("--api_key", KEY) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def relay(upstream: str) -> Iterator[Server]:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": upstream}
    with start_server("--model", "openai/smollm2", env=env) as running:
        yield running


def _ask(content: str, **fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": content}], "temperature": 0, **fields}


def test_streams_from_an_openai_compatible_server(relay: Server) -> None:
    received = chat(relay.url, _ask("Say hello.", max_tokens=16))
    assert received.named("start")[0]["model"] == "openai/smollm2"
    assert len(received.named("delta")) >= 2
    name, done = received.last
    assert name == "done" and done["finish_reason"] in ("stop", "length")
    assert received.text.strip()


def test_cancel_closes_the_upstream_request(relay: Server) -> None:
    """llama.cpp's server runs one completion at a time: if the cancelled one went on
    upstream (1,500 tokens, ~20 s), the next request would wait for it."""
    body = _ask("Write a very long story about the sea.", max_tokens=1500)
    with httpx.stream("POST", f"{relay.url}/api/chat", json=body, timeout=60) as response:
        stream_id = response.headers["x-stream-id"]
        for count, event in enumerate(iter_events(response), 1):
            if count == 3:
                httpx.post(f"{relay.url}/api/streams/{stream_id}/cancel", timeout=10)
            if event.event in ("done", "error"):
                assert json.loads(event.data)["finish_reason"] == "cancelled"
                break
    started = time.monotonic()
    follow_up = chat(relay.url, _ask("Hi", max_tokens=4))
    assert follow_up.last[0] == "done"
    assert time.monotonic() - started < 8


def test_a_wrong_key_is_an_upstream_auth_error_event(upstream: str) -> None:
    env = {"OPENAI_API_KEY": "sk-wrong", "OPENAI_BASE_URL": upstream}
    with start_server("--model", "openai/smollm2", env=env) as srv:
        received = chat(srv.url, _ask("Hi", max_tokens=4))
    name, error = received.last
    assert [e.event for e in received.events] == ["start", "error"]
    assert name == "error" and error["code"] == "upstream_auth"


def test_an_unreachable_upstream_is_an_error_event_not_a_hang() -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with start_server("--model", "openai/smollm2", env=env) as srv:
        received = chat(srv.url, _ask("Hi"), timeout=30)
    assert received.last[0] == "error"
    assert received.last[1]["code"] == "upstream_disconnected"
