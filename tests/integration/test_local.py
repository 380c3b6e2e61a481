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
#: seconds a test waits for what it watches: generous, so two busy cores cannot fail it
DEADLINE = 30.0


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


def test_cancel_stops_the_model(local_server: Server) -> None:
    # 1,500 tokens take the model far longer than the deadline: an answer that ends
    # inside it, `cancelled` and short, was stopped by the cancel.
    body = _ask("Write a long story about a lighthouse keeper.", max_tokens=1500)
    events = []
    deadline = time.monotonic() + DEADLINE
    with httpx.stream("POST", f"{local_server.url}/api/chat", json=body, timeout=60) as response:
        stream_id = response.headers["x-stream-id"]
        for event in iter_events(response):
            events.append(event)
            if len(events) == 4:
                cancel = httpx.post(f"{local_server.url}/api/streams/{stream_id}/cancel",
                                    timeout=10)
                assert cancel.json()["cancelled"] is True
            if event.event in ("done", "error"):
                break
            assert time.monotonic() < deadline, "the model went on after the cancel"
    done = json.loads(events[-1].data)
    assert events[-1].event == "done" and done["finish_reason"] == "cancelled"
    deltas = [e for e in events if e.event == "delta"]
    assert 3 <= len(deltas) < 1500
    assert done["usage"]["output_tokens"] == len(deltas)
    # The model is free again: the next request gets its answer.
    assert chat(local_server.url, _ask("Hi", max_tokens=4)).last[0] == "done"


def _finished(base: str, stream_id: str) -> bool:
    """Whether the server has ended the stream: read past its end, a finished one is a
    204 (a running one answers 200 and waits for more)."""
    with httpx.stream("GET", f"{base}/api/streams/{stream_id}",
                      params={"last_event_id": 10**9}, timeout=30) as response:
        return response.status_code == 204


def test_a_queued_request_gets_start_at_once_and_waits_its_turn(local_server: Server) -> None:
    results: dict[str, list[str]] = {}
    first_id: list[str] = []
    first_delta = threading.Event()
    checks: dict[str, bool] = {}

    def run(name: str, prompt: str, max_tokens: int) -> None:
        timeline = results.setdefault(name, [])
        with httpx.stream("POST", f"{local_server.url}/api/chat",
                          json=_ask(prompt, max_tokens=max_tokens), timeout=60) as response:
            if name == "first":
                first_id.append(response.headers["x-stream-id"])
            for event in iter_events(response):
                timeline.append(event.event)
                if name == "first" and event.event == "delta":
                    first_delta.set()
                elif name == "second" and event.event == "start":
                    checks["first running at second's start"] = "done" not in results["first"]
                elif name == "second" and event.event == "delta" and "delta" not in checks:
                    # The server's word, not our threads' order: had both generated at
                    # once, the first would still be streaming here.
                    checks["delta"] = True
                    checks["first ended at second's delta"] = _finished(
                        local_server.url, first_id[0])

    # The second asks once the first is generating (its first delta came), with up to
    # 47 of the first's tokens still to go.
    first = threading.Thread(target=run, args=(
        "first", "Write a long story about a lighthouse keeper.", 48))
    first.start()
    assert first_delta.wait(DEADLINE)
    second = threading.Thread(target=run, args=("second", "Say hi.", 8))
    second.start()
    first.join(60)
    second.join(60)
    assert not first.is_alive() and not second.is_alive()
    assert checks["first running at second's start"], "the queued request was told at once"
    assert checks["first ended at second's delta"], "one generation at a time on one model"
    assert results["first"][-1] == "done" and results["second"][-1] == "done"


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
