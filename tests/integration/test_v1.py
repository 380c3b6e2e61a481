"""The OpenAI-compatible endpoint, with the official `openai` SDK as the client."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.servers import Server, start_server
from tests.sse_client import iter_events
from tests.polling import until

TEXT = "Compatible with\nthe SDK. " * 5
PIECES = re.findall(r"\S*\s+|\S+", TEXT)  # the scripted provider's deltas
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def sdk(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def async_sdk(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_non_streaming_completion(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="scripted", messages=USER, extra_body={"text": TEXT})
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == TEXT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == len(PIECES)


def test_streaming_chunks_in_openais_format(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(
        model="scripted", messages=USER, stream=True, max_tokens=4,
        stream_options={"include_usage": True}, extra_body={"text": TEXT}))
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == "length", "max_tokens reached it"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == "".join(PIECES[:4])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens == 4


def test_streaming_without_usage_has_no_usage_chunk(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(model="scripted", messages=USER, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_async_sdk_streaming_and_not(async_sdk: openai.AsyncOpenAI) -> None:
    stream = await async_sdk.chat.completions.create(
        model="scripted", messages=USER, stream=True, extra_body={"text": TEXT})
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    answer = await async_sdk.chat.completions.create(
        model="scripted", messages=USER, extra_body={"text": TEXT})
    assert text == answer.choices[0].message.content == TEXT


def test_system_developer_and_content_parts_are_accepted(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="scripted", messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello "},
                                     {"type": "text", "text": "there"}]},
    ])
    assert answer.choices[0].message.content


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"model": "nosuch"}, openai.NotFoundError, "Unknown model"),
    ({"n": 2}, openai.BadRequestError, "n must be 1"),
    ({"extra_body": {"functions": [{"name": "f", "parameters": {}}]}},
     openai.BadRequestError, "functions"),
    ({"response_format": {"type": "json_object"}}, openai.BadRequestError, "response_format"),
    ({"logprobs": True}, openai.BadRequestError, "logprobs"),
    ({"temperature": 5}, openai.BadRequestError, "temperature"),
    ({"messages": []}, openai.BadRequestError, "messages"),
    ({"extra_body": {"delay": 3}}, openai.BadRequestError, "delay"),
])
def test_refusals_are_openai_errors(sdk: openai.OpenAI, kwargs: dict, error: type,
                                    needle: str) -> None:
    arguments = {"model": "scripted", "messages": USER, **kwargs}
    with pytest.raises(error) as raised:
        sdk.chat.completions.create(**arguments)
    body = raised.value.body  # type: ignore[attr-defined]
    assert needle in body["message"] and body["type"] and body["code"]


def test_sampling_parameters_reach_providers_that_have_them(sdk: openai.OpenAI) -> None:
    # `scripted` has no top_p/seed/stop: they are dropped, not refused.
    answer = sdk.chat.completions.create(model="scripted", messages=USER, top_p=0.5, seed=3,
                                         stop=["x"], extra_body={"text": "fine"})
    assert answer.choices[0].message.content == "fine"


def test_an_upstream_failure_mid_stream_raises_in_the_sdk(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="scripted", messages=USER, stream=True,
                                         extra_body={"text": TEXT, "fail_after": 2})
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk)
    assert "scripted failure" in str(raised.value)
    assert len([c for c in received if c.choices and c.choices[0].delta.content]) == 2


def test_calls_are_stored_unless_store_is_false(server: Server, sdk: openai.OpenAI) -> None:
    stored = sdk.chat.completions.with_raw_response.create(
        model="scripted", messages=[{"role": "user", "content": "keep me"}])
    stream_id = stored.headers["x-stream-id"]
    answer = stored.parse()
    start = [e for e in iter_events(httpx.get(f"{server.url}/api/streams/{stream_id}"))][0]
    conversation_id = json.loads(start.data)["conversation_id"]
    conversation = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()
    assert conversation["messages"][-1]["content"] == answer.choices[0].message.content

    private = sdk.chat.completions.with_raw_response.create(
        model="scripted", messages=[{"role": "user", "content": "forget me"}], store=False)
    start = [e for e in iter_events(
        httpx.get(f"{server.url}/api/streams/{private.headers['x-stream-id']}"))][0]
    missing = httpx.get(
        f"{server.url}/api/conversations/{json.loads(start.data)['conversation_id']}")
    assert missing.status_code == 404, "store: false leaves nothing behind"


def test_a_v1_stream_can_be_resumed_and_cancelled_through_the_api(server: Server) -> None:
    body = {"model": "scripted", "messages": USER, "stream": True,
            "text": "word " * 500, "delay_ms": 20}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
        stream_id = r.headers["x-stream-id"]
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data: "))
        assert httpx.post(f"{server.url}/api/streams/{stream_id}/cancel").json()["cancelled"]
        data = [json.loads(line[6:]) for line in lines
                if line.startswith("data: {")]
    assert data[-1]["choices"][0]["finish_reason"] == "cancelled"
    replay = list(iter_events(httpx.get(f"{server.url}/api/streams/{stream_id}", timeout=10)))
    assert replay[0].event == "start" and replay[-1].event == "done"


def _titled(base: str, title: str) -> str | None:
    page = httpx.get(f"{base}/api/conversations", params={"limit": 100}, timeout=10).json()
    return next((c["id"] for c in page["conversations"] if c["title"] == title), None)


def _ended_answer(base: str, conversation_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{base}/api/conversations/{conversation_id}",
                       timeout=10).json()["messages"][-1]
    return None if answer["status"] == "streaming" else answer  # type: ignore[no-any-return]


def test_an_openai_client_hanging_up_stops_the_generation(server: Server) -> None:
    # 10,000 deltas 20 ms apart: minutes, were the hang-up not a stop. Watched through
    # the store, not the stream: a reader of the stream would keep it going (only an
    # answer nobody reads is stopped).
    question = f"hang up {uuid.uuid4().hex}"
    body = {"model": "scripted", "messages": [{"role": "user", "content": question}],
            "stream": True, "text": "word " * 10_000, "delay_ms": 20}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
        stream_id = r.headers["x-stream-id"]
        next(r.iter_lines())
    conversation_id = until(lambda: _titled(server.url, question), "stored")
    answer = until(lambda: _ended_answer(server.url, conversation_id), "stopped")
    assert answer["status"] == "cancelled"
    assert len(answer["content"]) < len(body["text"])  # type: ignore[arg-type]
    replay = list(iter_events(httpx.get(f"{server.url}/api/streams/{stream_id}", timeout=10)))
    done = json.loads(replay[-1].data)
    assert replay[-1].event == "done" and done["finish_reason"] == "cancelled"


def test_models_lists_what_the_server_offers(sdk: openai.OpenAI) -> None:
    ids = [model.id for model in sdk.models.list()]
    assert ids[0] == "scripted" and "local" in ids


@pytest.fixture
def front(server: Server) -> Iterator[Server]:
    """tokenrelay in front of tokenrelay: the `openai` provider pointed at `server`."""
    env = {"OPENAI_API_KEY": "unused", "OPENAI_BASE_URL": f"{server.url}/v1"}
    with start_server("--model", "openai/scripted", env=env) as running:
        yield running


def test_tokenrelay_in_front_of_tokenrelay(server: Server, front: Server) -> None:
    from tests.sse_client import chat

    through = chat(front.url, {"messages": USER, "max_tokens": 5})
    direct = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x").chat.completions.create(
        model="scripted", messages=USER, max_tokens=5)
    assert through.text == direct.choices[0].message.content
    done = through.named("done")[0]
    assert done["finish_reason"] == "length"
    assert done["usage"]["output_tokens"] == 5 and done["usage"]["input_tokens"] == 1


def test_cancel_in_front_stops_the_upstream_generation(server: Server, front: Server) -> None:
    from tests.sse_client import chat

    body = {"messages": [{"role": "user", "content": "long"}], "options": {}}
    with httpx.stream("POST", f"{front.url}/api/chat", json={**body, "max_tokens": 10_000},
                      timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        events = iter_events(response)
        next(events)
        httpx.post(f"{front.url}/api/streams/{stream_id}/cancel")
        last = list(events)[-1]
    assert last.event == "done" and json.loads(last.data)["finish_reason"] == "cancelled"
    assert chat(front.url, {"messages": USER, "max_tokens": 2}).last[0] == "done"
