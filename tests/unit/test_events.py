"""parse_event: a decoded SSE event as the typed event a client reads."""

from __future__ import annotations

import json

import pytest

from tokenrelay.events import Delta, Done, Error, Reasoning, Start, ToolCall, parse_event


def test_each_known_event_parses_to_its_type() -> None:
    start = parse_event("start", "1", json.dumps({
        "stream_id": "st_1", "conversation_id": "conv_1", "message_id": "msg_1",
        "model": "scripted", "title": "hi"}))
    assert start == Start(1, "st_1", "conv_1", "msg_1", "scripted")
    assert parse_event("delta", "2", '{"text": "h\\u00e9\\n"}') == Delta(2, "hé\n")
    done = parse_event("done", "3", json.dumps({
        "finish_reason": "stop", "length": 3, "usage": {"output_tokens": 1},
        "timings": {"ttft_ms": 1.5}}))
    assert done == Done(3, "stop", 3, {"output_tokens": 1}, {"ttft_ms": 1.5})
    error = parse_event("error", "4", '{"code": "upstream_error", "message": "boom"}')
    assert error == Error(4, "upstream_error", "boom", 0)


def test_an_unknown_event_is_skipped_not_an_error() -> None:
    # A newer server adds events: readers skip them.
    assert parse_event("citation", "5", '{"url": "x"}') is None


def test_reasoning_and_tool_call_pieces_parse() -> None:
    assert parse_event("reasoning", "2", '{"text": "hmm"}') == Reasoning(2, "hmm")
    first = parse_event("tool_call", "3", json.dumps(
        {"index": 0, "id": "call_1", "name": "get_weather", "arguments": "{\"ci"}))
    assert first == ToolCall(3, 0, '{"ci', "call_1", "get_weather")
    later = parse_event("tool_call", "4", json.dumps({"index": 0, "arguments": 'ty"}'}))
    assert later == ToolCall(4, 0, 'ty"}')
    done = parse_event("done", "5", json.dumps({
        "finish_reason": "tool_calls", "length": 0, "reasoning_length": 3,
        "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": '{"city"}'}]}))
    assert isinstance(done, Done) and done.finish_reason == "tool_calls"
    assert done.reasoning_length == 3 and done.tool_calls[0]["name"] == "get_weather"


def test_missing_optional_fields_take_their_defaults() -> None:
    assert parse_event("done", "9", '{"finish_reason": "cancelled"}') == Done(9, "cancelled", 0)


def test_an_event_without_a_numeric_id_has_id_zero() -> None:
    assert parse_event("delta", "", '{"text": "x"}') == Delta(0, "x")


def test_data_that_is_not_json_raises() -> None:
    with pytest.raises(ValueError):
        parse_event("delta", "1", "not json")
