"""The AI SDK's UI message stream protocol (/api/aisdk), on a real tokenrelay: the
chunks useChat reads, resume, stop, and chats that continue their conversation.

The chunk shapes are those of `ai` 6.0.325's ui-message-chunks.ts; tests/e2e/test_aisdk.py
drives the SDK itself in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.test_store_contract import store, store_url  # noqa: F401 (fixtures)
from tests.servers import ROOT, Server, start_server
from tests.polling import until
from tokenrelay.store import Conversation, Store, Turn, new_id, now

TEXT = "Streams for\nuseChat. " * 3
PIECES = re.findall(r"\S*\s+|\S+", TEXT)  # the scripted provider's deltas
DEADLINE = 30.0
#: every field each chunk type may have (ui-message-chunks.ts), the required ones first
CHUNK_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "start": (set(), {"messageId", "messageMetadata"}),
    "start-step": (set(), set()),
    "text-start": ({"id"}, set()), "text-delta": ({"id", "delta"}, set()),
    "text-end": ({"id"}, set()),
    "reasoning-start": ({"id"}, set()), "reasoning-delta": ({"id", "delta"}, set()),
    "reasoning-end": ({"id"}, set()),
    "tool-input-start": ({"toolCallId", "toolName"}, set()),
    "tool-input-delta": ({"toolCallId", "inputTextDelta"}, set()),
    "tool-input-available": ({"toolCallId", "toolName", "input"}, set()),
    "finish-step": (set(), set()),
    "finish": (set(), {"finishReason", "messageMetadata"}),
    "abort": (set(), {"reason"}),
    "error": ({"errorText"}, set()),
}
FINISH_REASONS = {"stop", "length", "content-filter", "tool-calls", "error", "other"}


def _user(text: str, message_id: str | None = None) -> dict[str, Any]:
    return {"id": message_id or uuid.uuid4().hex, "role": "user",
            "parts": [{"type": "text", "text": text}]}


def _body(chat_id: str, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """What DefaultChatTransport sends, with `options` for the scripted model."""
    return {"id": chat_id, "messages": messages, "trigger": "submit-message",
            "messageId": None, "options": options}


def _chunks(lines: Iterator[str]) -> Iterator[dict[str, Any] | str]:
    """The `data:` payloads of a UI message stream: chunks as JSON, then "[DONE]"."""
    for line in lines:
        if line.startswith("data: "):
            payload = line.removeprefix("data: ")
            yield payload if payload == "[DONE]" else json.loads(payload)


def _checked(chunks: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """The chunks, each checked against its type's fields; [DONE] only, and always, last."""
    assert chunks and chunks[-1] == "[DONE]"
    body = chunks[:-1]
    for chunk in body:
        assert isinstance(chunk, dict), chunk
        required, optional = CHUNK_FIELDS[chunk["type"]]
        assert required <= chunk.keys() <= required | optional | {"type"}, chunk
    finishes = [c for c in body if c["type"] == "finish"]  # type: ignore[index]
    assert all(c["finishReason"] in FINISH_REASONS for c in finishes)
    return body  # type: ignore[return-value]


def _post(server: Server, body: dict[str, Any],
          headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[dict[str, Any]]]:
    with httpx.stream("POST", f"{server.url}/api/aisdk/chat", json=body, headers=headers,
                      timeout=30) as response:
        assert response.status_code == 200, response.read()
        return response, _checked(list(_chunks(response.iter_lines())))


def _types(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in chunks]


def _conversation(server: Server, conversation_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/conversations/{conversation_id}")
    return response.json()  # type: ignore[no-any-return]


def test_text_streams_as_ui_message_chunks(server: Server) -> None:
    response, chunks = _post(server, _body(uuid.uuid4().hex, [_user("hi")], text=TEXT))
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert _types(chunks) == ["start", "start-step", "text-start",
                              *["text-delta"] * len(PIECES), "text-end", "finish-step", "finish"]
    start = chunks[0]
    conversation = _conversation(server, start["messageMetadata"]["conversationId"])
    answer = conversation["messages"][-1]
    assert start["messageId"] == answer["id"]  # the UIMessage id is the stored answer's
    part_ids = {c["id"] for c in chunks if c["type"].startswith("text-")}
    assert len(part_ids) == 1
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == TEXT
    assert chunks[-1]["finishReason"] == "stop"
    assert answer["content"] == TEXT and answer["status"] == "complete"


def test_reasoning_comes_first_in_its_own_part(server: Server) -> None:
    _, chunks = _post(server, _body(uuid.uuid4().hex, [_user("why?")],
                                    reasoning="First I think.", text="Then I answer."))
    types = _types(chunks)
    assert types[:3] == ["start", "start-step", "reasoning-start"]
    assert types.index("reasoning-end") < types.index("text-start")
    reasoning = [c for c in chunks if c["type"].startswith("reasoning-")]
    assert len({c["id"] for c in reasoning}) == 1
    assert "".join(c["delta"] for c in reasoning if "delta" in c) == "First I think."
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "Then I answer."


def test_tool_calls_stream_their_input_and_end_with_tool_calls(server: Server) -> None:
    calls = [{"name": "weather", "arguments": {"city": "Paris", "unit": "celsius"}},
             {"name": "time", "arguments": {"zone": "Europe/Paris"}}]
    _, chunks = _post(server, _body(uuid.uuid4().hex, [_user("weather?")], text="Let me see.",
                                    tool_calls=calls))
    types = _types(chunks)
    assert types.index("text-end") < types.index("tool-input-start")
    starts = [c for c in chunks if c["type"] == "tool-input-start"]
    assert [c["toolName"] for c in starts] == ["weather", "time"]
    for start, call in zip(starts, calls, strict=True):
        pieces = [c["inputTextDelta"] for c in chunks
                  if c["type"] == "tool-input-delta" and c["toolCallId"] == start["toolCallId"]]
        assert json.loads("".join(pieces)) == call["arguments"]
        available = [c for c in chunks if c["type"] == "tool-input-available"
                     and c["toolCallId"] == start["toolCallId"]]
        assert available == [{"type": "tool-input-available", "toolCallId": start["toolCallId"],
                               "toolName": call["name"], "input": call["arguments"]}]
    assert types[-2:] == ["finish-step", "finish"]
    assert chunks[-1]["finishReason"] == "tool-calls"


SDK_READER = ROOT / "tests" / "e2e" / "aisdk_app" / "read-stream.mjs"


def _read_with_the_sdk(server: Server, **options: Any) -> dict[str, Any]:
    """The UIMessage the AI SDK itself builds from our stream (every chunk validated
    by its schema): tests/e2e/aisdk_app/read-stream.mjs under Node."""
    node = shutil.which("node")
    if node is None or not (SDK_READER.parent / "node_modules" / "ai").exists():
        pytest.skip("The AI SDK test app is not installed: `make aisdk-app` (make test does this)")
    done = subprocess.run([node, str(SDK_READER), server.url, uuid.uuid4().hex,
                           json.dumps(options)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_ai_sdk_reads_text_reasoning_and_tool_calls_into_one_message(
        server: Server) -> None:
    message = _read_with_the_sdk(server, reasoning="Thinking.", text="Calling it.",
                                 tool_calls=[{"name": "weather", "arguments": {"city": "Oslo"}}])
    assert message["role"] == "assistant" and message["id"].startswith("msg_")
    assert message["metadata"]["finishReason"] == "tool_calls"
    parts = [p for p in message["parts"] if p["type"] != "step-start"]
    assert parts == [
        {"type": "reasoning", "id": "reasoning-1", "text": "Thinking.", "state": "done"},
        {"type": "text", "text": "Calling it.", "state": "done"},
        {"type": "tool-weather", "toolCallId": parts[2]["toolCallId"],
         "state": "input-available", "input": {"city": "Oslo"}},
    ]


def test_a_failing_model_ends_with_an_error_chunk(server: Server) -> None:
    _, chunks = _post(server, _body(uuid.uuid4().hex, [_user("hi")], text=TEXT, fail_after=2))
    assert _types(chunks) == ["start", "start-step", "text-start", "text-delta", "text-delta",
                              "text-end", "error"]
    assert "scripted failure" in chunks[-1]["errorText"]


def test_the_same_chat_id_continues_its_conversation_without_duplicates(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    first_user = _user("first question")
    _, first = _post(server, _body(chat_id, [first_user], text="First answer."))
    conversation_id = first[0]["messageMetadata"]["conversationId"]
    # useChat sends the whole history each time, its answer under the id `start` gave.
    answer = {"id": first[0]["messageId"], "role": "assistant",
              "parts": [{"type": "step-start"}, {"type": "text", "text": "First answer."}]}
    _, second = _post(server, _body(chat_id, [first_user, answer, _user("second question")],
                                    text="Second answer."))
    assert second[0]["messageMetadata"]["conversationId"] == conversation_id
    stored = _conversation(server, conversation_id)["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "first question"), ("assistant", "First answer."),
        ("user", "second question"), ("assistant", "Second answer.")]
    # The stored chat, as useChat's `messages` after a reload.
    chat = httpx.get(f"{server.url}/api/aisdk/chat/{chat_id}").json()
    assert [(m["role"], m["parts"]) for m in chat["messages"]] == [
        (m["role"], [{"type": "text", "text": m["content"], "state": "done"}]) for m in stored]
    assert chat["messages"][1]["id"] == first[0]["messageId"]


def test_a_chat_not_stored_yet_is_empty_and_cannot_be_stopped(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    chat = httpx.get(f"{server.url}/api/aisdk/chat/{chat_id}")
    assert chat.status_code == 200 and chat.json()["messages"] == []
    stop = httpx.post(f"{server.url}/api/aisdk/chat/{chat_id}/stop")
    assert stop.status_code == 404 and stop.json()["error"]["code"] == "conversation_not_found"


def test_one_chat_id_names_a_conversation_per_owner() -> None:
    alice, bob = {"Authorization": "Bearer alice-key"}, {"Authorization": "Bearer bob-key"}
    with start_server("--model", "scripted",
                      env={"TOKENRELAY_API_KEYS": "alice-key,bob-key"}) as keyed:
        _, mine = _post(keyed, _body("shared-name", [_user("alice asks")], text="A."), alice)
        _, theirs = _post(keyed, _body("shared-name", [_user("bob asks")], text="B."), bob)
        ids = {c[0]["messageMetadata"]["conversationId"] for c in (mine, theirs)}
        assert len(ids) == 2
        for key, question in ((alice, "alice asks"), (bob, "bob asks")):
            chat = httpx.get(f"{keyed.url}/api/aisdk/chat/shared-name", headers=key).json()
            assert chat["messages"][0]["parts"][0]["text"] == question


def test_sending_only_what_is_stored_is_refused(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    _, first = _post(server, _body(chat_id, [_user("q")], text="A."))
    answer = {"id": first[0]["messageId"], "role": "assistant", "parts": []}
    again = httpx.post(f"{server.url}/api/aisdk/chat",
                       json=_body(chat_id, [_user("q"), answer]))
    assert again.status_code == 422 and again.json()["error"]["code"] == "no_messages"


def test_regenerate_answers_the_last_question_again(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    question = _user("q")
    _, first = _post(server, _body(chat_id, [question], text="One."))
    body = {**_body(chat_id, [question], text="Two."), "trigger": "regenerate-message",
            "messageId": first[0]["messageId"]}
    _, second = _post(server, body)
    assert second[0]["messageId"] != first[0]["messageId"]
    chat = httpx.get(f"{server.url}/api/aisdk/chat/{chat_id}").json()
    assert [m["parts"][0]["text"] for m in chat["messages"]] == ["q", "Two."]


def test_unknown_body_fields_are_refused(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/aisdk/chat",
                          json={**_body("c", [_user("q")]), "temprature": 1})
    assert response.status_code == 422


class _Reader:
    """A UI message stream read on a thread, chunk by chunk, as a browser would."""

    def __init__(self, method: str, url: str, **kwargs: Any):
        self.chunks: list[dict[str, Any] | str] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self._thread = threading.Thread(target=self._read, args=(method, url), kwargs=kwargs,
                                        daemon=True)
        self._thread.start()

    def _read(self, method: str, url: str, **kwargs: Any) -> None:
        with httpx.stream(method, url, timeout=60, **kwargs) as response:
            self.status, self.headers = response.status_code, response.headers
            for chunk in _chunks(response.iter_lines()):
                self.chunks.append(chunk)

    def deltas(self) -> int:
        return sum(1 for c in self.chunks if isinstance(c, dict) and c["type"] == "text-delta")

    def join(self) -> list[dict[str, Any]]:
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the stream did not end"
        return _checked(self.chunks)


def _slow(chat_id: str) -> dict[str, Any]:
    words = " ".join(f"w{i}" for i in range(400))
    return _body(chat_id, [_user("long one")], text=words, delay_ms=25)


def test_resume_replays_the_active_stream_from_its_start(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    url = f"{server.url}/api/aisdk/chat/{chat_id}"
    assert httpx.get(f"{url}/stream").status_code == 204  # no such chat yet
    original = _Reader("POST", f"{server.url}/api/aisdk/chat",
                       json={**_slow(chat_id), "options": {"text": "a b c d e f g h i j",
                                                           "delay_ms": 150}})
    until(lambda: original.deltas() >= 3, "three deltas streamed")
    resumed = _Reader("GET", f"{url}/stream")
    first, again = original.join(), resumed.join()
    assert resumed.status == 200 and resumed.headers is not None
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert again == first  # the same answer, whole, from its `start`
    assert _types(again)[0] == "start" and _types(again)[-1] == "finish"
    assert httpx.get(f"{url}/stream").status_code == 204  # it has ended


def test_stop_cancels_the_model_and_stores_the_partial_answer(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    url = f"{server.url}/api/aisdk/chat/{chat_id}"
    reader = _Reader("POST", f"{server.url}/api/aisdk/chat", json=_slow(chat_id))
    until(lambda: reader.deltas() >= 2, "two deltas streamed")
    stopped = httpx.post(f"{url}/stop").json()
    assert stopped["stopped"] is True
    chunks = reader.join()
    assert _types(chunks)[-2:] == ["text-end", "abort"]
    conversation_id = chunks[0]["messageMetadata"]["conversationId"]
    listed = httpx.get(f"{server.url}/api/conversations").json()["conversations"]
    assert conversation_id in [c["id"] for c in listed]
    answer = until(lambda: (m := _conversation(server, conversation_id)["messages"][-1])
                    ["status"] == "cancelled" and m, "the answer stored as cancelled")
    streamed = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert answer["content"] == streamed and len(answer["content"].split()) < 400
    assert httpx.post(f"{url}/stop").json()["stopped"] is False  # nothing runs now


def test_stop_after_a_resume_stops_the_model(server: Server) -> None:
    chat_id = uuid.uuid4().hex
    url = f"{server.url}/api/aisdk/chat/{chat_id}"
    original = _Reader("POST", f"{server.url}/api/aisdk/chat", json=_slow(chat_id))
    until(lambda: original.deltas() >= 1, "a delta streamed")
    resumed = _Reader("GET", f"{url}/stream")
    until(lambda: resumed.deltas() >= 2, "the resumed stream caught up")
    assert httpx.post(f"{url}/stop").json()["stopped"] is True
    for reader in (original, resumed):
        assert _types(reader.join())[-1] == "abort"


async def test_a_stores_chat_ids_name_one_conversation_per_owner(
        store: Store) -> None:  # noqa: F811 (the fixture)
    def conversation(owner: str, chat_id: str | None) -> Conversation:
        created = now()
        return Conversation(id=new_id("conv"), title="t", created=created, updated=created,
                            owner=owner, chat_id=chat_id)

    mine = conversation("me", "chat-1")
    await store.add_turn(Turn.of(mine, new=True, asked=[("user", "hi")], model="m",
                                 stream_id=new_id("st")))
    for other in (conversation("you", "chat-1"), conversation("me", None),
                  conversation("me", None)):  # the same id for another owner, or none
        await store.add_turn(Turn.of(other, new=True, asked=[("user", "hi")], model="m",
                                     stream_id=new_id("st")))
    found = await store.find_conversation(owner="me", chat_id="chat-1")
    assert found is not None and found.id == mine.id and found.chat_id == "chat-1"
    assert [m.content for m in found.messages] == ["hi", ""]
    assert await store.find_conversation(owner="me", chat_id="chat-2") is None
    with pytest.raises(Exception):  # noqa: B017, PT011 (each store raises its own)
        await store.add_turn(Turn.of(conversation("me", "chat-1"), new=True,
                                     asked=[("user", "again")], model="m",
                                     stream_id=new_id("st")))
