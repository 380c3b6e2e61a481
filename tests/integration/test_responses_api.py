"""OpenAI's Responses API (/v1/responses), with the official `openai` SDK as the client."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.servers import Server, start_server
from tests.polling import until

TEXT = "Responses from\nthe log. " * 4
PIECES = re.findall(r"\S*\s+|\S+", TEXT)  # the scripted provider's deltas
#: a text that would stream for minutes at `SLOW` (a test cancels it long before)
LONG = "word " * 3000
SLOW = {"text": LONG, "delay_ms": 20}
CALLS = [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
         {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
         {"type": "function", "name": "get_time", "parameters": {"type": "object"}}]


@pytest.fixture
def sdk(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def _stored(server: Server, conversation_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/conversations/{conversation_id}")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _dumps(events: Any) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json", exclude_none=False) for e in events]


def test_streamed_text_through_the_sdks_stream_helper(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="scripted", input="hi", extra_body={"text": TEXT}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    deltas = len(PIECES)
    assert types == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * deltas,
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    assert final.output_text == TEXT and final.status == "completed"
    assert final.id.startswith("resp_") and len({e.response.id for e in events
                                                  if hasattr(e, "response")}) == 1


def test_create_with_stream_true_gives_the_raw_events(sdk: openai.OpenAI) -> None:
    events = list(sdk.responses.create(model="scripted", input="hi", stream=True,
                                       max_output_tokens=3, extra_body={"text": TEXT}))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    last = events[-1]
    assert last.type == "response.incomplete", "max_output_tokens cut it"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == "".join(PIECES[:3])


def test_not_streamed_the_response_has_its_output_and_usage(sdk: openai.OpenAI,
                                                            server: Server) -> None:
    response = sdk.responses.create(model="scripted", input="hello there",
                                    instructions="Answer briefly.", extra_body={"text": TEXT})
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == TEXT
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    usage = response.usage
    assert usage is not None and usage.output_tokens == len(PIECES)
    # the scripted model counts the words it was given: the instructions' two as well
    assert usage.input_tokens == 4 and usage.total_tokens == len(PIECES) + 4
    raw = httpx.post(f"{server.url}/v1/responses",
                     json={"model": "scripted", "input": "hi", "text": TEXT}).json()
    assert raw["output_text"] == TEXT, "output_text for clients that read the JSON"
    stored = _stored(server, response.conversation.id)
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"], \
        "instructions are not stored (OpenAI does not carry them to the next turn)"


def test_reasoning_and_function_calls_then_the_tool_loop(sdk: openai.OpenAI,
                                                         server: Server) -> None:
    with sdk.responses.stream(model="scripted", input="weather and time in Paris?",
                              tools=TOOLS,  # type: ignore[arg-type]
                              extra_body={"text": "Let me check. ",
                                          "reasoning": "The user wants two things.",
                                          "tool_calls": CALLS}) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in types
    assert "response.function_call_arguments.delta" in types
    reasoning, message, *calls = final.output
    assert reasoning.type == "reasoning"
    assert reasoning.content is not None
    assert "".join(c.text for c in reasoning.content) == "The user wants two things."
    assert message.type == "message" and final.output_text == "Let me check. "
    assert [(c.type, c.name) for c in calls] == [("function_call", "get_weather"),
                                                 ("function_call", "get_time")]
    assert [json.loads(c.arguments) for c in calls] == [c["arguments"] for c in CALLS]
    assert all(c.status == "completed" for c in calls)

    follow_up = sdk.responses.create(
        model="scripted", previous_response_id=final.id, tools=TOOLS,  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": f"out {i}"}
               for i, c in enumerate(calls)],
        extra_body={"text": "It is sunny at noon."})
    assert follow_up.output_text == "It is sunny at noon."
    assert follow_up.conversation.id == final.conversation.id
    stored = _stored(server, final.conversation.id)["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [c["name"] for c in stored[1]["tool_calls"]] == ["get_weather", "get_time"]
    assert [m["tool_call_id"] for m in stored[2:4]] == [c.call_id for c in calls]
    assert stored[4]["content"] == "It is sunny at noon."


def test_previous_response_id_keeps_the_history(sdk: openai.OpenAI, server: Server) -> None:
    first = sdk.responses.create(model="scripted", input="My name is Ada.",
                                 extra_body={"text": "Hello Ada."})
    second = sdk.responses.create(model="scripted", input="What is my name?",
                                  previous_response_id=first.id,
                                  extra_body={"text": "Ada."})
    assert second.id != first.id and second.conversation.id == first.conversation.id
    stored = _stored(server, first.conversation.id)["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "My name is Ada."), ("assistant", "Hello Ada."),
        ("user", "What is my name?"), ("assistant", "Ada.")]
    # tokenrelay conversations do not branch: only the latest response continues
    with pytest.raises(openai.BadRequestError, match="not the latest"):
        sdk.responses.create(model="scripted", input="again", previous_response_id=first.id)
    assert sdk.responses.retrieve(first.id).output_text == "Hello Ada."
    # OpenAI's `conversation` parameter names a tokenrelay conversation as it is
    third = sdk.responses.create(model="scripted", input="Bye.",
                                 conversation=first.conversation.id, extra_body={"text": "Bye!"})
    assert third.conversation.id == first.conversation.id
    assert len(_stored(server, first.conversation.id)["messages"]) == 6


def test_an_unstored_response_cannot_be_continued(sdk: openai.OpenAI) -> None:
    unstored = sdk.responses.create(model="scripted", input="hi", store=False)
    assert unstored.status == "completed"
    with pytest.raises(openai.NotFoundError, match="store: false"):
        sdk.responses.create(model="scripted", input="more", previous_response_id=unstored.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve("resp_st_000-conv_000")


def test_every_reader_numbers_the_events_alike_and_resumes_after_any_n(
        sdk: openai.OpenAI) -> None:
    options = {"text": "Sunny and warm. ", "reasoning": "Look it up.", "tool_calls": CALLS}
    posted = _dumps(sdk.responses.create(model="scripted", input="weather?", stream=True,
                                         tools=TOOLS,  # type: ignore[arg-type]
                                         extra_body=options))
    response_id = posted[0]["response"]["id"]
    full = _dumps(sdk.responses.retrieve(response_id, stream=True))
    assert full == posted, "a later reader gets the same numbered events"
    assert [e["sequence_number"] for e in full] == list(range(len(full)))
    types = {e["type"] for e in full}
    assert {"response.reasoning_text.delta", "response.output_text.delta",
            "response.function_call_arguments.delta", "response.completed"} <= types
    for n in range(len(full)):
        resumed = _dumps(sdk.responses.retrieve(response_id, stream=True, starting_after=n))
        assert resumed == full[n + 1:], f"resumed after {n}"
    # the SDK's own helper resumes too (it reads from the start and skips)
    with sdk.responses.stream(response_id=response_id, starting_after=5) as stream:
        assert [e.sequence_number for e in stream][0] == 6
        assert stream.get_final_response().output_text == "Sunny and warm. "


def test_background_state_resume_and_cancel(sdk: openai.OpenAI, server: Server) -> None:
    started = sdk.responses.create(model="scripted", input="a long one", background=True,
                                   extra_body=SLOW)
    assert started.status in ("queued", "in_progress")
    partial = until(lambda: (r := sdk.responses.retrieve(started.id)).output_text and r,
                     "some text in the response's state")
    assert partial.status == "in_progress" and LONG.startswith(partial.output_text)
    # a resumed stream while it runs: its first events are the ones after N
    with sdk.responses.retrieve(started.id, stream=True, starting_after=3) as events:
        first = next(iter(events))
        assert first.sequence_number == 4
    cancelled = sdk.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    text = cancelled.output_text
    assert text and LONG.startswith(text) and len(text) < len(LONG), "the partial answer"
    again = sdk.responses.retrieve(started.id)
    assert again.status == "cancelled" and again.output_text == text
    tail = list(sdk.responses.retrieve(started.id, stream=True, starting_after=0))
    assert tail[-1].type == "response.incomplete" and tail[-1].response.status == "cancelled"
    answer = _stored(server, started.conversation.id)["messages"][-1]
    assert answer["status"] == "cancelled" and answer["content"] == text
    assert sdk.responses.cancel(started.id).status == "cancelled", "cancelling again"


def test_a_streaming_client_that_hangs_up_stops_the_model(sdk: openai.OpenAI) -> None:
    stream = sdk.responses.create(model="scripted", input="hi", stream=True, extra_body=SLOW)
    response_id = ""
    for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            break
    stream.close()
    stopped = until(lambda: (r := sdk.responses.retrieve(response_id)).status != "in_progress"
                     and r, "the response ended")
    assert stopped.status == "cancelled"


def test_a_failed_answer_is_a_failed_response(sdk: openai.OpenAI) -> None:
    options = {"text": TEXT, "fail_after": 2}
    events = list(sdk.responses.create(model="scripted", input="hi", stream=True,
                                       extra_body=options))
    last = events[-1]
    assert last.type == "response.failed" and last.response.status == "failed"
    assert last.response.error is not None and "upstream_error" in last.response.error.message
    assert last.response.output_text == "".join(PIECES[:2]), "the partial answer is kept"
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.responses.create(model="scripted", input="hi", extra_body=options)
    assert caught.value.status_code == 502


@pytest.mark.parametrize(("body", "named"), [
    ({"tools": [{"type": "web_search"}]}, "web_search"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "file_search"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input_image"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input_file"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "json_schema"),
])
def test_unsupported_parts_are_openai_shaped_400s_that_name_them(
        server: Server, body: dict[str, Any], named: str) -> None:
    response = httpx.post(f"{server.url}/v1/responses",
                          json={"model": "scripted", "input": "hi", **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert named in error["message"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unsupported_parameter"


def test_the_sdk_raises_bad_request_for_a_built_in_tool(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="web_search"):
        sdk.responses.create(model="scripted", input="hi",
                             tools=[{"type": "web_search"}])  # type: ignore[list-item]


def test_once_its_stream_has_expired_a_response_is_read_from_the_store() -> None:
    with start_server("--model", "scripted", "--retention", "0.2") as server, \
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as sdk:
        first = sdk.responses.create(model="scripted", input="hi",
                                     tools=TOOLS,  # type: ignore[arg-type]
                                     extra_body={"text": "Calling. ", "reasoning": "Hm.",
                                                 "tool_calls": CALLS[:1]})

        def expired() -> bool:
            try:
                list(sdk.responses.retrieve(first.id, stream=True))
            except openai.NotFoundError:
                return True
            return False

        until(expired, "the stream expired")
        stored = sdk.responses.retrieve(first.id)
        assert stored.id == first.id and stored.status == "completed"
        assert [item.type for item in stored.output] == ["reasoning", "message", "function_call"]
        assert stored.output_text == "Calling. " and stored.usage == first.usage
        assert stored.output[2].call_id == first.output[2].call_id
        assert sdk.responses.cancel(first.id).status == "completed", "it had ended"
        follow_up = sdk.responses.create(
            model="scripted", previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": stored.output[2].call_id,
                    "output": "sunny"}], extra_body={"text": "Sunny."})
        assert follow_up.output_text == "Sunny."


ALICE, BOB = "sk-alice-" + "a" * 24, "sk-bob-" + "b" * 24


def test_keys_and_owners_as_on_chat_completions() -> None:
    with start_server("--model", "scripted",
                      env={"TOKENRELAY_API_KEYS": f"{ALICE},{BOB}"}) as server:
        base = f"{server.url}/v1"
        with openai.OpenAI(base_url=base, api_key=ALICE, max_retries=0) as alice, \
                openai.OpenAI(base_url=base, api_key=BOB, max_retries=0) as bob, \
                openai.OpenAI(base_url=base, api_key="sk-nobody", max_retries=0) as nobody:
            with pytest.raises(openai.AuthenticationError):
                nobody.responses.create(model="scripted", input="hi")
            mine = alice.responses.create(model="scripted", input="hi")
            assert alice.responses.retrieve(mine.id).status == "completed"
            with pytest.raises(openai.NotFoundError):
                bob.responses.retrieve(mine.id)
            with pytest.raises(openai.NotFoundError):
                bob.responses.cancel(mine.id)
            with pytest.raises(openai.NotFoundError):
                bob.responses.create(model="scripted", input="x", previous_response_id=mine.id)
