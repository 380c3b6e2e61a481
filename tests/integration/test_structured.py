"""Reasoning and tool calls, end to end (issue 13): from each provider's wire format,
through the stream log and the store, to /api and /v1 readers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.replay import replaying
from tests.servers import Server, start_server
from tests.sse_client import chat, resume

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris and Oslo?"}]
SCRIPT = {"reasoning": "Two cities, so two calls.", "text": "Checking both.",
          "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                         {"name": "get_weather", "arguments": {"city": "Oslo"}}]}


def _assembled(events: list[dict]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for event in events:
        call = calls.setdefault(event["index"], {"id": "", "name": "", "arguments": ""})
        call["id"] = event.get("id", call["id"])
        call["name"] = event.get("name", call["name"])
        call["arguments"] += event["arguments"]
    return calls


def test_reasoning_and_tool_calls_stream_in_order_and_are_stored(server: Server) -> None:
    received = chat(server.url, {"messages": ASK, "model": "scripted", "tools": [WEATHER],
                                 "options": SCRIPT})
    names = [e.event for e in received.events]
    assert names[0] == "start" and names[1] == "reasoning"  # reasoning first, at once
    assert names.index("delta") > max(i for i, n in enumerate(names) if n == "reasoning")
    assert "".join(d["text"] for d in received.named("reasoning")) == SCRIPT["reasoning"]
    pieces = received.named("tool_call")
    assert pieces[0].keys() == {"index", "id", "name", "arguments"}  # id and name first
    assert {p["index"] for p in pieces} == {0, 1}
    calls = _assembled(pieces)
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "Paris"},
                                                                    {"city": "Oslo"}]
    _, done = received.last
    assert done["finish_reason"] == "tool_calls"
    assert done["tool_calls"] == [calls[0], calls[1]]
    assert done["reasoning_length"] == len(SCRIPT["reasoning"])
    assert done["length"] == len(SCRIPT["text"])
    start = received.named("start")[0]
    stored = httpx.get(f"{server.url}/api/conversations/{start['conversation_id']}").json()
    answer = stored["messages"][-1]
    assert answer["reasoning"] == SCRIPT["reasoning"] and answer["content"] == SCRIPT["text"]
    assert answer["tool_calls"] == done["tool_calls"]


def test_resuming_from_every_event_gives_the_same_events(server: Server) -> None:
    first = chat(server.url, {"messages": ASK, "model": "scripted", "options": SCRIPT})
    stream_id = first.named("start")[0]["stream_id"]
    whole = [(e.id, e.event, e.data) for e in first.events]
    for after in range(len(whole)):
        rest = resume(server.url, stream_id, after)
        assert [(e.id, e.event, e.data) for e in rest.events] == whole[after:]


def test_a_tool_result_continues_the_conversation(server: Server) -> None:
    calls = chat(server.url, {"messages": ASK, "model": "scripted", "options": SCRIPT})
    start, (_, done) = calls.named("start")[0], calls.last
    call = done["tool_calls"][0]
    follow = chat(server.url, {
        "conversation_id": start["conversation_id"], "model": "scripted",
        "messages": [{"role": "tool", "tool_call_id": call["id"], "content": "18 °C, sunny"}]})
    assert follow.last[0] == "done"
    stored = httpx.get(f"{server.url}/api/conversations/{start['conversation_id']}").json()
    roles = [(m["role"], m.get("tool_call_id")) for m in stored["messages"]]
    assert roles == [("user", None), ("assistant", None), ("tool", call["id"]),
                     ("assistant", None)]


def test_a_tool_message_without_its_call_id_is_a_clear_4xx(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/chat", json={
        "model": "scripted", "messages": [{"role": "tool", "content": "x"}]})
    assert response.status_code == 422
    assert "tool_call_id" in response.json()["error"]["message"]


def test_cancel_mid_reasoning_keeps_the_partial_reasoning(server: Server) -> None:
    options = {"reasoning": "step " * 2000, "delay_ms": 5}
    with httpx.stream("POST", f"{server.url}/api/chat", timeout=60, json={
            "messages": ASK, "model": "scripted", "options": options}) as response:
        stream_id = response.headers["x-stream-id"]
        conversation_id = response.headers["x-conversation-id"]
        for line in response.iter_lines():
            if line == "event: reasoning":
                break  # reasoning is streaming
    assert httpx.post(f"{server.url}/api/streams/{stream_id}/cancel").json()["cancelled"]
    ended = resume(server.url, stream_id)
    _, done = ended.last
    assert done["finish_reason"] == "cancelled"
    assert 0 < done["reasoning_length"] < len(options["reasoning"])
    answer = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()["messages"][-1]
    assert answer["status"] == "cancelled"
    assert len(answer["reasoning"]) == done["reasoning_length"]


def test_the_openai_sdk_accumulates_streamed_calls_to_the_non_streamed_ones(
        server: Server) -> None:
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    fields = {"model": "scripted", "messages": ASK, "tools": [WEATHER], "extra_body": SCRIPT}
    whole = sdk.chat.completions.create(**fields)
    message = whole.choices[0].message
    assert whole.choices[0].finish_reason == "tool_calls"
    assert message.model_extra["reasoning_content"] == SCRIPT["reasoning"]
    calls: dict[int, dict[str, str]] = {}
    reasoning, finish = [], None
    for chunk in sdk.chat.completions.create(stream=True, **fields):
        for choice in chunk.choices:
            delta = choice.delta
            extra = delta.model_extra or {}
            if extra.get("reasoning_content"):
                assert extra["reasoning"] == extra["reasoning_content"]  # both names
                reasoning.append(extra["reasoning_content"])
            for piece in delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = piece.id or call["id"]
                if piece.function is not None:
                    call["name"] = piece.function.name or call["name"]
                    call["arguments"] += piece.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert "".join(reasoning) == SCRIPT["reasoning"]
    assert [calls[i] for i in sorted(calls)] == [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or ()]


def test_the_local_model_refuses_tools_with_a_clear_400(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/chat", json={
        "model": "local", "messages": ASK, "tools": [WEATHER]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "tools_unsupported"


# --- real upstream wire formats, replayed by a real HTTP server ---------------------


@pytest.fixture
def openai_upstream(request: pytest.FixtureRequest) -> Iterator[tuple[Server, object]]:
    with replaying(*request.param) as upstream:
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{upstream.url}/v1"}
        with start_server("--model", "openai/any", env=env) as relay:
            yield relay, upstream


@pytest.mark.parametrize("openai_upstream", [["openai/reasoning_content.sse"],
                                             ["openai/reasoning.sse"]], indirect=True,
                         ids=["deepseek-reasoning_content", "vllm-reasoning"])
def test_reasoning_from_either_field_name_streams_before_the_text(
        openai_upstream: tuple[Server, object]) -> None:
    relay, _ = openai_upstream
    received = chat(relay.url, {"messages": ASK})
    names = [e.event for e in received.events]
    assert names[1] == "reasoning", names
    assert names.index("delta") > names.index("reasoning")
    assert received.named("reasoning") and all(r["text"] for r in received.named("reasoning"))
    assert received.last[0] == "done" and received.text


@pytest.mark.parametrize("openai_upstream", [["openai/parallel_tool_calls.sse",
                                              "openai/reasoning.sse"]], indirect=True)
def test_parallel_openai_tool_calls_and_the_follow_up_reach_the_upstream(
        openai_upstream: tuple[Server, object]) -> None:
    relay, upstream = openai_upstream
    received = chat(relay.url, {"messages": ASK, "tools": [WEATHER],
                                "tool_choice": "auto", "parallel_tool_calls": True})
    _, done = received.last
    assert done["finish_reason"] == "tool_calls"
    assert done["tool_calls"] == [
        {"id": "call_Paris1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"id": "call_Oslo2", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]
    sent = upstream.requests[0]  # type: ignore[attr-defined]
    assert sent["tools"] == [WEATHER] and sent["parallel_tool_calls"] is True
    conversation_id = received.named("start")[0]["conversation_id"]
    chat(relay.url, {"conversation_id": conversation_id, "messages": [
        {"role": "tool", "tool_call_id": "call_Paris1", "content": "18 °C"},
        {"role": "tool", "tool_call_id": "call_Oslo2", "content": "4 °C"}]})
    history = upstream.requests[1]["messages"]  # type: ignore[attr-defined]
    assert history[1]["role"] == "assistant"
    assert [c["id"] for c in history[1]["tool_calls"]] == ["call_Paris1", "call_Oslo2"]
    assert [(m["role"], m["tool_call_id"]) for m in history[2:]] == [
        ("tool", "call_Paris1"), ("tool", "call_Oslo2")]


def test_anthropic_thinking_and_tool_use_map_and_the_signature_goes_back() -> None:
    with replaying("anthropic/thinking_tool_use.sse", "anthropic/hello.sse") as upstream:
        env = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": upstream.url}
        with start_server("--model", "anthropic/claude-sonnet-5-5", env=env) as relay:
            received = chat(relay.url, {"messages": ASK, "tools": [WEATHER], "max_tokens": 4000,
                                        "options": {"thinking_budget": 2048}})
            reasoning = "".join(r["text"] for r in received.named("reasoning"))
            assert reasoning == "The user wants the weather in Paris and Oslo: two calls."
            _, done = received.last
            assert done["finish_reason"] == "tool_calls"
            assert [json.loads(c["arguments"]) for c in done["tool_calls"]] == [
                {"city": "Paris"}, {"city": "Oslo"}]
            sent = upstream.requests[0]
            assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
            assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
            conversation_id = received.named("start")[0]["conversation_id"]
            chat(relay.url, {"conversation_id": conversation_id, "messages": [
                {"role": "tool", "tool_call_id": "toolu_01Paris", "content": "18 °C"},
                {"role": "tool", "tool_call_id": "toolu_02Oslo", "content": "4 °C"}]})
    assistant, results = upstream.requests[1]["messages"][1:3]
    assert [b["type"] for b in assistant["content"]] == ["thinking", "text", "tool_use",
                                                         "tool_use"]
    assert assistant["content"][0]["signature"].startswith("EqQB")
    assert results["role"] == "user"
    assert [(b["type"], b["tool_use_id"]) for b in results["content"]] == [
        ("tool_result", "toolu_01Paris"), ("tool_result", "toolu_02Oslo")]
