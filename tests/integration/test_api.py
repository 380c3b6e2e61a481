"""The HTTP API over real HTTP: uvicorn started by `tokenrelay serve` on a free port."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.servers import Server, start_server
from tests.sse_client import chat, iter_events, resume
from tests.polling import until

TEXT = "Streams outlive\nconnections.\n\n- resume\n- cancel\r\n  with  spaces " * 4
#: seconds a test waits for what it polls: generous, so two busy cores cannot fail it,
#: and far shorter than the 10,000-token answers that would run on were a stop broken
DEADLINE = 30.0
#: 10,000 deltas: minutes at the delays used below, unless something stops them
LONG = "word " * 10_000


def _body(**fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted", **fields}


def _ended_answer(base: str, conversation_id: str) -> dict[str, Any]:
    """The stored answer, once it is no longer `streaming` (read from the store, so no
    reader attaches to the stream)."""
    def ended() -> dict[str, Any] | None:
        answer = httpx.get(f"{base}/api/conversations/{conversation_id}",
                           timeout=10).json()["messages"][-1]
        return None if answer["status"] == "streaming" else answer  # type: ignore[no-any-return]
    return until(ended, "ended")  # type: ignore[no-any-return]


def test_chat_streams_start_deltas_done_with_consecutive_ids(server: Server) -> None:
    received = chat(server.url, _body(options={"text": TEXT}))

    assert received.status == 200
    assert received.headers["content-type"].startswith("text/event-stream")
    assert received.headers["cache-control"] == "no-cache"
    assert received.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in received.headers
    names = [e.event for e in received.events]
    assert names[0] == "start" and names[-1] == "done"
    assert set(names[1:-1]) == {"delta"}
    assert received.ids == list(range(1, len(received.events) + 1))
    assert received.text == TEXT
    start = received.named("start")[0]
    assert start["stream_id"] == received.headers["x-stream-id"]
    assert start["model"] == "scripted"
    done = received.named("done")[0]
    assert done["finish_reason"] == "stop"
    assert done["length"] == len(TEXT)
    assert done["usage"]["output_tokens"] == len(names) - 2
    assert done["timings"]["ttft_ms"] >= 0


def test_default_model_is_the_servers(server: Server) -> None:
    body = _body()
    del body["model"]
    received = chat(server.url, body)
    assert received.named("start")[0]["model"] == "scripted"
    assert received.last[0] == "done"


def test_max_tokens_caps_deltas_with_finish_length(server: Server) -> None:
    received = chat(server.url, _body(max_tokens=3, options={"text": "a b c d e f"}))
    assert received.text == "a b c "
    assert received.named("done")[0]["finish_reason"] == "length"


def _first_events(base: str, body: dict[str, object],
                  count: int) -> tuple[str, str, list[int], str]:
    """Read `count` events, then drop the connection; returns (stream_id,
    conversation_id, ids, text)."""
    text, ids = "", []
    with httpx.stream("POST", f"{base}/api/chat", json=body, timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        conversation_id = response.headers["x-conversation-id"]
        for event in iter_events(response):
            ids.append(int(event.id))
            if event.event == "delta":
                text += json.loads(event.data)["text"]
            if len(ids) == count:
                break
    return stream_id, conversation_id, ids, text


def test_resume_after_a_dropped_connection_gives_the_same_text(server: Server) -> None:
    body = _body(options={"text": TEXT, "delay_ms": 5})
    uninterrupted = chat(server.url, body).text
    stream_id, _, ids, text = _first_events(server.url, body, 7)

    rest = resume(server.url, stream_id, after=ids[-1])

    assert rest.ids[0] == ids[-1] + 1, "resume starts right after the last id seen"
    assert rest.ids == list(range(ids[-1] + 1, ids[-1] + 1 + len(rest.events)))
    assert text + rest.text == uninterrupted == TEXT
    assert rest.last[0] == "done"


def test_resume_by_query_parameter_and_from_the_start(server: Server) -> None:
    received = chat(server.url, _body(options={"text": TEXT}))
    stream_id = received.named("start")[0]["stream_id"]

    replay = resume(server.url, stream_id)
    assert replay.ids == received.ids and replay.text == TEXT

    response = httpx.get(f"{server.url}/api/streams/{stream_id}?last_event_id=3", timeout=10)
    assert response.status_code == 200
    assert "id: 4\n" in response.text and "id: 3\n" not in response.text


def test_a_finished_stream_read_past_its_end_is_204(server: Server) -> None:
    """204 makes an EventSource stop reconnecting instead of looping on a done stream."""
    received = chat(server.url, _body())
    stream_id = received.named("start")[0]["stream_id"]
    assert resume(server.url, stream_id, after=received.ids[-1]).status == 204


def test_two_readers_of_one_stream_see_the_same_events(server: Server) -> None:
    body = _body(options={"text": TEXT, "delay_ms": 3})
    with httpx.stream("POST", f"{server.url}/api/chat", json=body, timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        second = {}
        reader = threading.Thread(target=lambda: second.update(r=resume(server.url, stream_id)))
        reader.start()
        first = list(iter_events(response))
        reader.join(30)
    assert [(e.id, e.data) for e in second["r"].events] == [(e.id, e.data) for e in first]


def test_cancel_stops_the_generation_and_keeps_the_partial_answer(server: Server) -> None:
    # Uncancelled, this answer streams for over three minutes: ending within the
    # deadline, with a `cancelled` done, is the cancel's doing.
    body = _body(options={"text": LONG, "delay_ms": 20})
    seen = []
    deadline = time.monotonic() + DEADLINE
    with httpx.stream("POST", f"{server.url}/api/chat", json=body, timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        for event in iter_events(response):
            seen.append(event)
            if len(seen) == 4:
                answer = httpx.post(f"{server.url}/api/streams/{stream_id}/cancel", timeout=10)
                assert answer.status_code == 200 and answer.json()["cancelled"] is True
            if event.event in ("done", "error"):
                break
            assert time.monotonic() < deadline, "the stream went on after the cancel"

    done = json.loads(seen[-1].data)
    assert seen[-1].event == "done" and done["finish_reason"] == "cancelled"
    assert {e.event for e in seen[1:-1]} == {"delta"}
    text = "".join(json.loads(e.data)["text"] for e in seen if e.event == "delta")
    assert len("word ") * 3 <= len(text) < len(LONG)
    assert done["length"] == len(text)

    conversation_id = json.loads(seen[0].data)["conversation_id"]
    stored = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()
    answer_message = stored["messages"][-1]
    assert answer_message["status"] == "cancelled"
    assert answer_message["content"] == text
    again = httpx.post(f"{server.url}/api/streams/{stream_id}/cancel", timeout=10)
    assert again.json()["cancelled"] is False


def test_upstream_failure_mid_stream_is_an_error_event(server: Server) -> None:
    received = chat(server.url, _body(options={"text": TEXT, "fail_after": 3}))
    name, data = received.last
    assert name == "error"
    assert data["code"] == "upstream_error" and data["message"]
    assert len(received.named("delta")) == 3
    conversation = httpx.get(
        f"{server.url}/api/conversations/{received.named('start')[0]['conversation_id']}"
    ).json()
    assert conversation["messages"][-1]["status"] == "error"
    assert conversation["messages"][-1]["content"] == received.text
    assert conversation["messages"][-1]["error"]["code"] == "upstream_error"


def test_conversation_holds_the_user_message_and_the_answer(server: Server) -> None:
    received = chat(server.url, _body(options={"text": "hello there"}))
    start = received.named("start")[0]
    stored = httpx.get(f"{server.url}/api/conversations/{start['conversation_id']}").json()
    assert stored["title"] == "hi"
    assert [(m["role"], m["content"], m["status"]) for m in stored["messages"]] == [
        ("user", "hi", "complete"), ("assistant", "hello there", "complete"),
    ]
    assert stored["messages"][1]["id"] == start["message_id"]


def test_conversation_id_continues_from_stored_history(server: Server) -> None:
    first = chat(server.url, _body())
    conversation_id = first.named("start")[0]["conversation_id"]
    follow_up = {"messages": [{"role": "user", "content": "and then?"}],
                 "model": "scripted", "conversation_id": conversation_id}
    second = chat(server.url, follow_up)
    # The scripted answer derives from the whole history it was given: a fresh
    # conversation with only the new message would answer differently.
    fresh = chat(server.url, {**follow_up, "conversation_id": None})
    assert second.text != fresh.text
    stored = httpx.get(f"{server.url}/api/conversations/{conversation_id}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"messages": [', 400, "invalid_json"),
        (b'[]', 422, "invalid_request"),
        (json.dumps({"messages": []}).encode(), 422, "invalid_request"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), 422, "invalid_request"),
        (json.dumps(_body(model="nosuch/model")).encode(), 422, "unknown_model"),
        (json.dumps(_body(options={"delay": 1})).encode(), 422, "invalid_option"),
        (json.dumps(_body(options={"delay_ms": -5})).encode(), 422, "invalid_option"),
        (json.dumps(_body(max_tokens=-1)).encode(), 422, "invalid_request"),
        (json.dumps(_body(temperature=9)).encode(), 422, "invalid_request"),
        (json.dumps(_body(surprise=True)).encode(), 422, "invalid_request"),
        (json.dumps(_body(conversation_id="conv_nope")).encode(), 404, "conversation_not_found"),
        (json.dumps(_body(model="openai/gpt-4o-mini")).encode(), 400, "provider_unavailable"),
    ],
)
def test_bad_requests_get_a_json_4xx_that_says_what_to_fix(
    server: Server, body: bytes, status: int, code: str
) -> None:
    response = httpx.post(f"{server.url}/api/chat", content=body,
                          headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 10


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/api/streams/st_nope", {}, 404, "stream_not_found"),
        ("POST", "/api/streams/st_nope/cancel", {}, 404, "stream_not_found"),
        ("GET", "/api/conversations/conv_nope", {}, 404, "conversation_not_found"),
        ("GET", "/api/nothing-here", {}, 404, "not_found"),
        ("GET", "/api/chat", {}, 405, "method_not_allowed"),
    ],
)
def test_unknown_things_are_json_errors(
    server: Server, method: str, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = httpx.request(method, f"{server.url}{path}", headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_malformed_last_event_id_is_a_400(server: Server) -> None:
    stream_id = chat(server.url, _body()).named("start")[0]["stream_id"]
    response = httpx.get(f"{server.url}/api/streams/{stream_id}",
                         headers={"Last-Event-ID": "seven"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_last_event_id"


def test_heartbeat_and_retention_are_configurable() -> None:
    # A 3 s retention: long enough that the finished stream is surely still there
    # when read again at once, far shorter than the default 600 s the poll would meet.
    env = {"TOKENRELAY_HEARTBEAT": "0.2", "TOKENRELAY_RETENTION": "3"}
    with start_server("--model", "scripted", env=env) as srv:
        body = _body(options={"text": "slow words", "delay_ms": 700})
        with httpx.stream("POST", f"{srv.url}/api/chat", json=body, timeout=10) as response:
            raw = response.read()
        assert b": ping\n" in raw, "a quiet stream sends comments so proxies keep it open"
        stream_id = response.headers["x-stream-id"]
        assert resume(srv.url, stream_id).status == 200
        until(lambda: httpx.get(f"{srv.url}/api/streams/{stream_id}",
                                 timeout=10).status_code == 404,
               "expired after the retention time")


def test_a_stream_nobody_reads_stops_after_abandon_after() -> None:
    with start_server("--model", "scripted", "--abandon-after", "0.5") as srv:
        # Minutes long were it not abandoned: the poll would meet its deadline.
        body = _body(options={"text": LONG, "delay_ms": 10})
        stream_id, conversation_id, _, _ = _first_events(srv.url, body, 2)
        stored = _ended_answer(srv.url, conversation_id)
        assert stored["status"] == "cancelled"
        rest = resume(srv.url, stream_id, after=2)
        name, data = rest.last
        assert name == "done" and data["finish_reason"] == "cancelled"
        assert len(rest.named("delta")) < 10_000
        assert stored["content"].startswith("word ") and len(stored["content"]) < len(LONG)


def test_a_stream_nobody_reads_keeps_generating_by_default(server: Server) -> None:
    body = _body(options={"text": "word " * 50, "delay_ms": 5})
    stream_id, conversation_id, _, _ = _first_events(server.url, body, 2)
    stored = _ended_answer(server.url, conversation_id)
    assert stored["status"] == "complete" and stored["content"] == "word " * 50
    rest = resume(server.url, stream_id, after=2)
    assert rest.last[0] == "done" and rest.last[1]["finish_reason"] == "stop"
    assert rest.last[1]["length"] == len("word " * 50)


def test_models_are_listed_with_readable_labels_and_no_test_model_by_default() -> None:
    with start_server("--database", "memory") as plain:  # the bundled model's server
        listed = httpx.get(f"{plain.url}/api/models", timeout=60).json()
    assert listed["default"] == "local" and "scripted" not in listed["models"]
    assert listed["labels"]["local"] == "SmolLM2 135M · local CPU"


def test_a_server_started_for_the_test_model_lists_it(server: Server) -> None:
    listed = httpx.get(f"{server.url}/api/models", timeout=60).json()
    assert listed["models"][0] == "scripted" == listed["default"]
    assert listed["labels"]["scripted"].startswith("Scripted")
