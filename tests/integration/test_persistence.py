"""Conversations that last, over real HTTP, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from tests.databases import Postgres
from tests.servers import free_port, start_server
from tests.sse_client import chat, iter_events

WORDS = "word " * 2000


def _body(content: str = "hi", **fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": content}], "model": "scripted", **fields}


def _conversation(url: str, conversation_id: str) -> dict:
    response = httpx.get(f"{url}/api/conversations/{conversation_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _read_then_cancel(url: str, body: dict[str, object], count: int) -> tuple[str, str]:
    """Read `count` events, cancel; returns (conversation_id, text seen)."""
    text = ""
    with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=30) as response:
        for n, event in enumerate(iter_events(response), 1):
            data = json.loads(event.data)
            if event.event == "start":
                conversation_id, stream_id = data["conversation_id"], data["stream_id"]
            elif event.event == "delta":
                text += data["text"]
            if n == count:
                httpx.post(f"{url}/api/streams/{stream_id}/cancel", timeout=10)
    return conversation_id, text


def test_every_status_is_stored_and_survives_a_restart(database_url: str) -> None:
    port = free_port()
    with start_server("--model", "scripted", "--database", database_url, port=port) as srv:
        complete = chat(srv.url, _body("one", options={"text": "all of it"}))
        failed = chat(srv.url, _body("two", options={"text": "a b c d", "fail_after": 2}))
        cancelled_id, cancelled_text = _read_then_cancel(
            srv.url, _body("three", options={"text": WORDS, "delay_ms": 20}), 5)
        # Shut down mid-answer: the answer is stored as interrupted, with its text.
        with httpx.stream("POST", f"{srv.url}/api/chat", timeout=30,
                          json=_body("four", options={"text": WORDS, "delay_ms": 20})) as response:
            interrupted_id = response.headers["x-conversation-id"]
            for n, _ in enumerate(iter_events(response), 1):
                if n == 4:
                    srv.process.terminate()
    with start_server("--model", "scripted", "--database", database_url, port=port) as srv:
        expected = {
            complete.named("start")[0]["conversation_id"]: ("complete", "all of it"),
            failed.named("start")[0]["conversation_id"]: ("error", "a b "),
            cancelled_id: ("cancelled", None),
            interrupted_id: ("interrupted", None),
        }
        for conversation_id, (status, text) in expected.items():
            answer = _conversation(srv.url, conversation_id)["messages"][-1]
            assert answer["status"] == status
            if text is not None:
                assert answer["content"] == text
            else:
                assert answer["content"] and WORDS.startswith(answer["content"])
        cancelled = _conversation(srv.url, cancelled_id)["messages"][-1]
        assert cancelled["content"].startswith(cancelled_text)
        failed_answer = _conversation(srv.url, failed.named("start")[0]["conversation_id"])
        assert failed_answer["messages"][-1]["error"]["code"] == "upstream_error"
        listed = httpx.get(f"{srv.url}/api/conversations", timeout=10).json()
        assert {c["id"] for c in listed["conversations"]} == set(expected)


def test_kill_9_mid_answer_keeps_the_text_streamed_so_far(database_url: str) -> None:
    port = free_port()
    seen = ""
    with start_server("--model", "scripted", "--database", database_url, port=port) as srv:
        body = _body(options={"text": WORDS, "delay_ms": 10})
        with httpx.stream("POST", f"{srv.url}/api/chat", json=body, timeout=30) as response:
            conversation_id = response.headers["x-conversation-id"]
            for event in iter_events(response):
                if event.event == "delta":
                    seen += json.loads(event.data)["text"]
                if len(seen) >= len("word ") * 150:  # ~1.5 s of streaming
                    srv.process.send_signal(signal.SIGKILL)
                    break
        srv.process.wait(10)
    with start_server("--model", "scripted", "--database", database_url, port=port) as srv:
        answer = _conversation(srv.url, conversation_id)["messages"][-1]
    assert answer["status"] == "interrupted"
    assert seen.startswith(answer["content"])
    # Flushed at least every 500 ms: at 10 ms a token, at most ~50 tokens are missing.
    assert len(answer["content"]) >= len(seen) - len("word ") * 60


def test_continue_after_a_restart_builds_the_history_from_the_store(database_url: str) -> None:
    port = free_port()
    with start_server("--model", "scripted", "--database", database_url, port=port) as srv:
        first = chat(srv.url, _body("remember this"))
    conversation_id = first.named("start")[0]["conversation_id"]
    follow_up = {"messages": [{"role": "user", "content": "and?"}], "model": "scripted"}
    with start_server("--model", "scripted", "--database", database_url, port=port) as srv:
        continued = chat(srv.url, {**follow_up, "conversation_id": conversation_id})
        with_history = chat(srv.url, {"model": "scripted", "messages": [
            {"role": "user", "content": "remember this"},
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": "and?"},
        ]})
        stored = _conversation(srv.url, conversation_id)
    # The scripted answer is a function of the whole history it was given.
    assert continued.text == with_history.text
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]


def test_list_rename_delete_and_pagination(database_url: str) -> None:
    with start_server("--model", "scripted", "--database", database_url) as srv:
        ids = [chat(srv.url, _body(f"chat {n}")).named("start")[0]["conversation_id"]
               for n in range(5)]
        pages, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{srv.url}/api/conversations", params=params, timeout=10).json()
            pages.append([c["id"] for c in page["conversations"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]], "newest first, no gaps, no repeats"
        assert httpx.get(f"{srv.url}/api/conversations", params={"cursor": "garbage!"},
                         timeout=10).status_code == 422

        renamed = httpx.patch(f"{srv.url}/api/conversations/{ids[0]}",
                              json={"title": "Renamed"}, timeout=10)
        assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
        assert _conversation(srv.url, ids[0])["title"] == "Renamed"
        assert httpx.patch(f"{srv.url}/api/conversations/{ids[0]}", json={"title": ""},
                           timeout=10).status_code == 422
        assert httpx.patch(f"{srv.url}/api/conversations/conv_nope", json={"title": "x"},
                           timeout=10).status_code == 404

        assert httpx.delete(f"{srv.url}/api/conversations/{ids[1]}", timeout=10).status_code == 204
        gone = httpx.get(f"{srv.url}/api/conversations/{ids[1]}", timeout=10)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "conversation_not_found"
        assert httpx.delete(f"{srv.url}/api/conversations/{ids[1]}", timeout=10).status_code == 404


def test_deleting_a_conversation_stops_its_running_answer(database_url: str) -> None:
    with start_server("--model", "scripted", "--database", database_url) as srv:
        body = _body(options={"text": WORDS, "delay_ms": 50})
        with httpx.stream("POST", f"{srv.url}/api/chat", json=body, timeout=30) as response:
            conversation_id = response.headers["x-conversation-id"]
            events = iter_events(response)
            next(events), next(events)
            assert httpx.delete(f"{srv.url}/api/conversations/{conversation_id}",
                                timeout=10).status_code == 204
            last = list(events)[-1]
        assert last.event == "done" and json.loads(last.data)["finish_reason"] == "cancelled"


def test_regenerate_keeps_the_earlier_answer_as_a_version(database_url: str) -> None:
    with start_server("--model", "scripted", "--database", database_url) as srv:
        first = chat(srv.url, _body("tell me", options={"text": "first answer"}))
        conversation_id = first.named("start")[0]["conversation_id"]
        response = httpx.post(f"{srv.url}/api/conversations/{conversation_id}/regenerate",
                              json={"options": {"text": "second answer"}}, timeout=30)
        assert response.status_code == 200
        assert "second answer" in "".join(
            json.loads(line[6:])["text"] for line in response.text.splitlines()
            if line.startswith("data: {\"text\""))
        stored = _conversation(srv.url, conversation_id)["messages"]
        assert [(m["role"], m["content"]) for m in stored] == [
            ("user", "tell me"), ("assistant", "first answer"), ("assistant", "second answer"),
        ]
        assert stored[1]["reply_to"] == stored[2]["reply_to"] == stored[0]["id"]
        # The model now sees only the newest version: continuing gives the same answer
        # as a fresh conversation holding that history.
        continued = chat(srv.url, {"messages": [{"role": "user", "content": "more"}],
                                   "model": "scripted", "conversation_id": conversation_id})
        fresh = chat(srv.url, {"model": "scripted", "messages": [
            {"role": "user", "content": "tell me"},
            {"role": "assistant", "content": "second answer"},
            {"role": "user", "content": "more"},
        ]})
        assert continued.text == fresh.text
        missing = httpx.post(f"{srv.url}/api/conversations/conv_nope/regenerate", timeout=10)
        assert missing.status_code == 404


def test_the_same_idempotency_key_gives_one_generation(database_url: str) -> None:
    with start_server("--model", "scripted", "--database", database_url) as srv:
        body = _body(options={"text": "exactly once", "delay_ms": 20})
        headers = {"Idempotency-Key": "submit-42"}
        with httpx.stream("POST", f"{srv.url}/api/chat", json=body, headers=headers,
                          timeout=30) as response:
            first_stream = response.headers["x-stream-id"]
            events = iter_events(response)
            next(events)  # a network error after the first event: the client retries
        again = httpx.post(f"{srv.url}/api/chat", json=body, headers=headers, timeout=30)
        assert again.status_code == 200
        assert again.headers["x-stream-id"] == first_stream
        assert "exactly once" in "".join(
            json.loads(line[6:])["text"] for line in again.text.splitlines()
            if line.startswith("data: {\"text\""))
        page = httpx.get(f"{srv.url}/api/conversations", timeout=10).json()
        assert len(page["conversations"]) == 1
        stored = _conversation(srv.url, page["conversations"][0]["id"])["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"]
        other = httpx.post(f"{srv.url}/api/chat", json=body,
                           headers={"Idempotency-Key": "submit-43"}, timeout=30)
        assert other.headers["x-stream-id"] != first_stream


def test_a_database_from_a_newer_tokenrelay_is_a_clear_error(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/chat.db"
    with start_server("--model", "scripted", "--database", url):
        pass
    import sqlite3

    with sqlite3.connect(f"{tmp_path}/chat.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--port", str(free_port()),
         "--model", "scripted", "--database", url],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "9999_future" in result.stderr and "newer tokenrelay" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_a_clear_error() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--port", str(free_port()),
         "--model", "scripted", "--database", url],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Cannot use the database" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["mysql://nowhere/db", "not a url"])
def test_an_unsupported_database_url_is_a_clear_error(url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--port", str(free_port()),
         "--model", "scripted", "--database", url],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "database" in result.stderr.lower()


def test_a_lost_database_ends_the_answer_with_an_error_event(postgres: Postgres) -> None:
    """The question and answer rows are written while the provider starts; if that
    write fails, the stream says so instead of streaming an answer nobody keeps."""
    url = postgres.create_database()
    with start_server("--model", "scripted", "--database", url) as srv:
        postgres.drop_database(url)
        received = chat(srv.url, _body("lost", options={"text": "word " * 50, "delay_ms": 5}))
        assert received.status == 200 and received.events[0].event == "start"
        name, data = received.last
        assert name == "error" and data["code"] == "database_unavailable"
        assert "Traceback" not in srv.log()
