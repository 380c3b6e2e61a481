"""The bundled model through the server: llama-cpp-python on the CPU, for real."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Server, start_server
from tests.sse_client import chat, iter_events

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding the bundled GGUF under another name."""
    from tokenrelay.providers.local import bundled_model_path

    directory = tmp_path_factory.mktemp("models")
    (directory / "smol.gguf").symlink_to(bundled_model_path())
    return directory


@pytest.fixture(scope="module")
def local_server(models: Path) -> Iterator[Server]:
    # No --model: the default is the bundled model.
    with start_server(env={"TOKENRELAY_MODELS_DIR": str(models)}) as running:
        yield running


def _ask(content: str, **fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": content}], "temperature": 0, **fields}


def test_the_default_model_streams_a_short_answer(local_server: Server) -> None:
    received = chat(local_server.url, _ask("Say hello.", max_tokens=24))
    assert received.named("start")[0]["model"] == "local"
    deltas = received.named("delta")
    assert len(deltas) >= 2, "the answer comes token by token"
    name, done = received.last
    assert name == "done" and done["finish_reason"] in ("stop", "length")
    assert received.text.strip()
    assert done["length"] == len(received.text)
    assert done["usage"]["output_tokens"] == len(deltas)
    assert done["timings"]["tokens_per_s"] > 0


def test_the_same_seed_gives_the_same_answer(local_server: Server) -> None:
    body = _ask("Name a color.", max_tokens=12, options={"seed": 7})
    assert chat(local_server.url, body).text == chat(local_server.url, body).text


def test_cancel_stops_the_model_within_a_token_or_two(local_server: Server) -> None:
    body = _ask("Write a long story about a lighthouse keeper.", max_tokens=1500)
    events = []
    with httpx.stream("POST", f"{local_server.url}/api/chat", json=body, timeout=60) as response:
        stream_id = response.headers["x-stream-id"]
        for event in iter_events(response):
            events.append(event)
            if len(events) == 4:
                httpx.post(f"{local_server.url}/api/streams/{stream_id}/cancel", timeout=10)
                acknowledged = len(events)
                cancelled_at = time.monotonic()
            if event.event in ("done", "error"):
                break
    assert events[-1].event == "done"
    assert json.loads(events[-1].data)["finish_reason"] == "cancelled"
    assert time.monotonic() - cancelled_at < 1.0
    # Tokens come every ~12 ms here: one may be on the wire when the cancel lands.
    assert len(events) - acknowledged <= 3


def test_a_queued_request_gets_start_at_once_and_waits_its_turn(local_server: Server) -> None:
    results: dict[str, list[tuple[float, str]]] = {}

    def run(name: str, prompt: str) -> None:
        timeline = results.setdefault(name, [])
        with httpx.stream("POST", f"{local_server.url}/api/chat",
                          json=_ask(prompt, max_tokens=48), timeout=60) as response:
            for event in iter_events(response):
                timeline.append((time.monotonic(), event.event))

    first = threading.Thread(target=run, args=("first", "Count from one to twenty."))
    first.start()
    time.sleep(0.3)
    second = threading.Thread(target=run, args=("second", "Say hi."))
    second.start()
    first.join(60)
    second.join(60)
    first_done = next(t for t, name in results["first"] if name == "done")
    second_start = next(t for t, name in results["second"] if name == "start")
    second_delta = next(t for t, name in results["second"] if name == "delta")
    assert second_start < first_done, "the queued request was told at once it started"
    assert second_delta >= first_done, "one generation at a time on one model"
    assert results["second"][-1][1] == "done"


def test_a_gguf_loads_by_path_only_from_the_models_directory(local_server: Server) -> None:
    from tokenrelay.providers.local import bundled_model_path

    for model in ("local/smol.gguf", f"local/{bundled_model_path()}"):
        received = chat(local_server.url, _ask("Hi", max_tokens=4, model=model))
        assert received.last[0] == "done" and received.text, model
    for model, code in [("local/missing.gguf", "model_not_found"),
                        ("local//etc/passwd", "model_not_allowed"),
                        ("local/../../../../etc/hostname.gguf", "model_not_allowed"),
                        ("local//nowhere/model.gguf", "model_not_allowed")]:
        response = httpx.post(f"{local_server.url}/api/chat", json=_ask("Hi", model=model),
                              timeout=10)
        assert response.status_code == 400, model
        error = response.json()["error"]
        assert error["code"] == code, model
        assert "passwd" not in code and "root:" not in error["message"]
