"""The bundled model as a new user meets it (issue 14, points 1-3): answers that end,
a history longer than the context window, input tokens counted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from benchmarks.prompts import repeats
from tests.servers import Server, start_server
from tests.sse_client import chat

pytestmark = pytest.mark.model

#: about 2,600 tokens of SmolLM2's tokenizer: four such are over its 8,192 window
LONG = "The river bends around the old mill and the water runs on. " * 220
#: a short window for the history test: the kept prompt is what the CPU reads first
SHORT_WINDOW = 1024


@pytest.fixture(scope="module")
def local_server() -> Iterator[Server]:
    with start_server() as running:  # no --model: the bundled model, default settings
        yield running


def _user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize("prompt", ["Write a haiku about rivers", "hi"])
def test_the_readmes_prompts_end_by_themselves_with_default_settings(
        local_server: Server, prompt: str) -> None:
    received = chat(local_server.url, {"messages": [_user(prompt)], "options": {"seed": 1}})
    _, done = received.last
    assert done["finish_reason"] == "stop", received.text[-300:]
    assert not repeats(received.text)


def test_an_answer_without_max_tokens_is_bounded(local_server: Server) -> None:
    from tokenrelay.providers.local import DEFAULT_MAX_TOKENS

    received = chat(local_server.url, {"messages": [_user("Write a very long story.")],
                                       "options": {"seed": 3}}, timeout=300)
    _, done = received.last
    assert done["usage"]["output_tokens"] <= DEFAULT_MAX_TOKENS


def test_a_history_past_the_window_keeps_the_newest_turns() -> None:
    note = LONG[:1200]  # about 240 tokens
    history = []
    for n in range(8):
        history += [_user(f"Note {n}: {note}"), {"role": "assistant", "content": "Noted."}]
    with start_server(env={"TOKENRELAY_LOCAL_CONTEXT": str(SHORT_WINDOW)}) as short:
        received = chat(short.url, {"messages": [*history, _user("Say OK.")],
                                    "max_tokens": 8}, timeout=120)
    name, done = received.last
    assert name == "done", done
    assert done["messages_dropped"] >= 2  # at least the oldest note and its answer
    assert 0 < done["usage"]["input_tokens"] <= SHORT_WINDOW - 8


def test_one_message_too_long_for_the_window_is_a_clear_400(local_server: Server) -> None:
    response = httpx.post(f"{local_server.url}/api/chat", timeout=60,
                          json={"messages": [_user(LONG * 4)]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "8,192" in error["message"] and "shorten it" in error["message"]
    assert "Traceback" not in local_server.log()
    assert "/" not in error["message"].replace("s/", "")  # no server path in it


def test_input_tokens_are_counted_on_api_and_v1(local_server: Server) -> None:
    _, done = chat(local_server.url, {"messages": [_user("hi")], "max_tokens": 4}).last
    counted = done["usage"]["input_tokens"]
    assert isinstance(counted, int) and counted > 5  # the template's system prompt too
    sdk = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused")
    whole = sdk.chat.completions.create(model="local", messages=[_user("hi")], max_tokens=4)
    assert whole.usage is not None and whole.usage.prompt_tokens == counted
    chunks = list(sdk.chat.completions.create(model="local", messages=[_user("hi")],
                                              max_tokens=4, stream=True,
                                              stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == counted
