"""The Responses translation (server/responses_api.py): tokenrelay's log in, OpenAI's
Responses events out; and the request side, Responses input as tokenrelay messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tokenrelay.errors import NotFound, TokenrelayError
from tokenrelay.messages import AssistantToolCall, Message
from tokenrelay.server.responses_api import (
    Translation, _stored_events, _tool_choice, _tools, encode, input_messages,
    parse_response_id, response_id,
)
from tokenrelay.service import StoredMessage
from tokenrelay.sse import Decoder

START = {"stream_id": "st_1", "conversation_id": "conv_1", "message_id": "msg_abc",
         "model": "scripted", "title": "hi", "created": 1700000000}
#: a log with reasoning, text, two interleaved tool calls, as the generation writes it
LOG: list[tuple[str, dict[str, Any]]] = [
    ("start", START),
    ("reasoning", {"text": "Think "}), ("reasoning", {"text": "first."}),
    ("delta", {"text": "Hel"}), ("delta", {"text": "lo"}),
    ("tool_call", {"index": 0, "id": "call_a", "name": "f", "arguments": '{"x":'}),
    ("tool_call", {"index": 1, "id": "call_b", "name": "g", "arguments": "{}"}),
    ("tool_call", {"index": 0, "arguments": " 1}"}),
    ("done", {"finish_reason": "tool_calls", "usage": {"input_tokens": 3, "output_tokens": 7},
              "tool_calls": []}),
]


def _feed(log: list[tuple[str, dict[str, Any]]]) -> tuple[Translation, list[dict[str, Any]]]:
    translation = Translation()
    events = [e for name, data in log for e in translation.feed(name, data)]
    return translation, events


def test_a_log_translates_to_responses_events_in_order() -> None:
    translation, events = _feed(LOG)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final["id"] == "resp_st_1-conv_1" and final["status"] == "completed"
    assert final["created_at"] == 1700000000 and final["conversation"] == {"id": "conv_1"}
    reasoning, message, f, g = final["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Think first."}]
    assert message["content"][0]["text"] == "Hello" and message["status"] == "completed"
    assert (f["call_id"], f["name"], f["arguments"]) == ("call_a", "f", '{"x": 1}')
    assert (g["call_id"], g["name"], g["arguments"]) == ("call_b", "g", "{}")
    assert len({item["id"] for item in final["output"]}) == 4
    assert final["usage"]["total_tokens"] == 10 and translation.output_text() == "Hello"


def test_the_same_log_prefix_always_gives_the_same_numbered_events() -> None:
    _, full = _feed(LOG)
    for cut in range(len(LOG) + 1):
        _, prefix = _feed(LOG[:cut])
        assert prefix == full[:len(prefix)], f"the translation of {cut} events differs"
    assert _feed(LOG)[1] == full


def test_items_are_added_empty_and_the_deltas_fill_them() -> None:
    _, events = _feed(LOG)
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert added[0]["content"] == [] and added[1]["content"] == []
    assert added[2]["arguments"] == "" and added[2]["status"] == "in_progress"
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == []


def test_reasoning_between_texts_opens_a_new_item_each_time() -> None:
    translation, _ = _feed([("start", START), ("delta", {"text": "a"}),
                            ("reasoning", {"text": "r"}), ("delta", {"text": "b"}),
                            ("done", {"finish_reason": "stop"})])
    output = translation.response()["output"]
    assert [item["type"] for item in output] == ["message", "reasoning", "message"]
    assert translation.output_text() == "ab"


@pytest.mark.parametrize(("finish", "status", "details"), [
    ("length", "incomplete", {"reason": "max_output_tokens"}),
    ("cancelled", "cancelled", None),
])
def test_an_answer_cut_short_ends_incomplete(finish: str, status: str,
                                             details: dict[str, str] | None) -> None:
    _, events = _feed([("start", START), ("delta", {"text": "Hel"}),
                       ("done", {"finish_reason": finish})])
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["status"] == status
    assert last["response"]["incomplete_details"] == details
    assert last["response"]["output"][0]["status"] == "incomplete"
    assert last["response"]["output"][0]["content"][0]["text"] == "Hel"


def test_an_error_event_fails_the_response_keeping_the_partial_output() -> None:
    translation, events = _feed([("start", START), ("delta", {"text": "Hel"}),
                                 ("tool_call", {"index": 0, "id": "c", "name": "f",
                                                "arguments": "{"}),
                                 ("error", {"code": "upstream_rate_limited", "message": "slow"})])
    last = events[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["error"] == {"code": "rate_limit_exceeded",
                                         "message": "slow [upstream_rate_limited]"}
    # the text ended when the call began; the call was cut off
    assert [i["status"] for i in last["response"]["output"]] == ["completed", "incomplete"]
    assert translation.failure == ("upstream_rate_limited", "slow")
    assert translation.feed("delta", {"text": "late"}) == [], "nothing after the end"


def test_unknown_events_and_events_before_start_give_nothing() -> None:
    translation = Translation()
    assert translation.feed("delta", {"text": "x"}) == []
    assert len(translation.feed("start", START)) == 2
    assert translation.feed("newer_event", {"x": 1}) == []
    assert translation.sequence == 1


def test_events_encode_as_sse_with_the_sequence_number_as_id() -> None:
    _, events = _feed(LOG[:2])
    decoded = Decoder().feed(encode(events))
    assert [(e.event, e.id) for e in decoded] == [
        ("response.created", "0"), ("response.in_progress", "1"),
        ("response.output_item.added", "2"), ("response.content_part.added", "3"),
        ("response.reasoning_text.delta", "4")]


def test_a_stored_answer_shows_as_its_stream_would() -> None:
    answer = StoredMessage(
        id="msg_abc", conversation_id="conv_1", role="assistant", content="Hello",
        created=datetime(2024, 1, 1, tzinfo=UTC), model="scripted", status="complete",
        usage={"input_tokens": 2, "output_tokens": 3}, stream_id="st_1", reasoning="hm",
        tool_calls=[{"id": "call_a", "name": "f", "arguments": "{}"}])
    start = {**START, "created": 1704067200}
    translation, _ = _feed(_stored_events(start, answer))
    response = translation.response()
    assert response["status"] == "completed"
    assert [i["type"] for i in response["output"]] == ["reasoning", "message", "function_call"]
    assert response["usage"]["output_tokens"] == 3
    answer.status, answer.error_code = "interrupted", "shutdown"
    assert _feed(_stored_events(start, answer))[0].response()["status"] == "failed"


def test_response_ids_name_the_stream_and_the_conversation() -> None:
    value = response_id("st_0123", "conv_4567")
    assert parse_response_id(value) == ("st_0123", "conv_4567")
    for bad in ("st_0123", "resp_st_0123", "resp_-conv", "chatcmpl-1"):
        with pytest.raises(NotFound):
            parse_response_id(bad)


def test_input_as_a_string_or_items() -> None:
    assert input_messages("hi") == [Message("user", "hi")]
    messages = input_messages([
        {"role": "developer", "content": "be brief"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "two"}]},
    ])
    assert messages == [
        Message("system", "be brief"), Message("user", "hi"),
        Message("assistant", "calling", tool_calls=(AssistantToolCall("c1", "f", "{}"),
                                                    AssistantToolCall("c2", "g", '{"a":1}'))),
        Message("tool", "one", tool_call_id="c1"), Message("tool", "two", tool_call_id="c2"),
    ]


@pytest.mark.parametrize(("items", "named"), [
    ([{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}], "input_image"),
    ([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}], "input_file"),
    ([{"role": "user", "content": [{"type": "input_audio"}]}], "input_audio"),
    ([{"type": "web_search_call", "id": "ws"}], "web_search_call"),
    ([{"type": "item_reference", "id": "msg_1"}], "item_reference"),
])
def test_unsupported_input_is_a_400_that_names_it(items: list[dict[str, Any]],
                                                  named: str) -> None:
    with pytest.raises(TokenrelayError) as caught:
        input_messages(items)
    assert caught.value.status == 400 and named in caught.value.message


def test_function_tools_flattened_and_built_in_tools_refused_by_name() -> None:
    [tool] = _tools([{"type": "function", "name": "f", "parameters": {"type": "object"},
                      "strict": True}])
    assert (tool.name, tool.parameters) == ("f", {"type": "object"})
    with pytest.raises(TokenrelayError) as caught:
        _tools([{"type": "web_search"}, {"type": "file_search", "vector_store_ids": []}])
    assert "web_search" in caught.value.message and "file_search" in caught.value.message
    with pytest.raises(TokenrelayError, match="flattened"):
        _tools([{"type": "function", "function": {"name": "f"}}])
    with pytest.raises(TokenrelayError, match="name") as invalid:
        _tools([{"type": "function", "parameters": {}}])
    assert invalid.value.status == 400


def test_tool_choice_in_the_providers_form() -> None:
    assert _tool_choice("required") == "required"
    assert _tool_choice({"type": "function", "name": "f"}) == {
        "type": "function", "function": {"name": "f"}}
    with pytest.raises(TokenrelayError, match="web_search_preview"):
        _tool_choice({"type": "web_search_preview"})
