"""tokenrelay.Client and AsyncClient against a real server, through a proxy that cuts."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

from tokenrelay import (
    APIError, AsyncClient, Client, Delta, Done, Start, StreamFailed, StreamInterrupted,
)
from tests.proxy import cutting_proxy
from tests.servers import Server

TEXT = "Every token counts,\nnone twice. " * 60


def _port(server: Server) -> int:
    return urlparse(server.url).port  # type: ignore[return-value]


def test_text_of_a_direct_stream(server: Server) -> None:
    with Client(server.url) as client:
        assert client.chat("hi", model="scripted", options={"text": TEXT}).text() == TEXT


def test_a_stream_cut_several_times_reads_as_one_unbroken_stream(server: Server) -> None:
    with cutting_proxy(_port(server), cut_after=700, cuts=4) as proxy, \
            Client(proxy.url, backoff=0.01) as client:
        stream = client.chat("hi", model="scripted", options={"text": TEXT, "delay_ms": 1})
        events = list(stream)
    assert proxy.cut == 4 and proxy.connections >= 5, "the proxy really cut the connections"
    assert isinstance(events[0], Start) and isinstance(events[-1], Done)
    assert [e.id for e in events] == list(range(1, len(events) + 1)), "nothing lost or doubled"
    assert "".join(e.text for e in events if isinstance(e, Delta)) == TEXT
    assert events[-1].length == len(TEXT)


async def test_the_async_client_resumes_the_same_way(server: Server) -> None:
    with cutting_proxy(_port(server), cut_after=900, cuts=3) as proxy:
        async with AsyncClient(proxy.url, backoff=0.01) as client:
            text = await client.chat("hi", model="scripted",
                                     options={"text": TEXT, "delay_ms": 1}).text()
    assert proxy.cut == 3
    assert text == TEXT


def test_retries_run_out_with_a_clear_exception(server: Server) -> None:
    # The first connection gets the start and some deltas; every later one is cut
    # before its first byte, so no retry makes progress.
    with cutting_proxy(_port(server), plan=[700] + [0] * 20) as proxy, \
            Client(proxy.url, max_retries=2, backoff=0.01) as client:
        stream = client.chat("hi", model="scripted", options={"text": TEXT, "delay_ms": 1})
        with pytest.raises(StreamInterrupted) as error:
            stream.text()
    assert error.value.stream_id is not None and error.value.last_event_id > 0
    # What was missed can be read later, directly, from where it stopped.
    with Client(server.url) as client:
        rest = client.stream(error.value.stream_id, after=error.value.last_event_id)
        events = list(rest)
    assert events[0].id == error.value.last_event_id + 1
    assert isinstance(events[-1], Done)


def test_cancel_and_conversations(server: Server) -> None:
    with Client(server.url) as client:
        stream = client.chat("stop me", model="scripted",
                             options={"text": "word " * 500, "delay_ms": 20})
        events = iter(stream)
        start = next(events)
        assert isinstance(start, Start)
        assert client.cancel(start.stream_id) is True
        done = [e for e in events][-1]
        assert isinstance(done, Done) and done.finish_reason == "cancelled"
        stored = client.conversation(start.conversation_id)
        assert stored["messages"][-1]["status"] == "cancelled"
        assert any(c["id"] == start.conversation_id for c in client.conversations()["conversations"])
        assert client.rename(start.conversation_id, "Stopped")["title"] == "Stopped"
        client.delete(start.conversation_id)
        with pytest.raises(APIError) as missing:
            client.conversation(start.conversation_id)
        assert missing.value.status == 404 and missing.value.code == "conversation_not_found"


def test_bad_input_and_upstream_errors_are_exceptions(server: Server) -> None:
    with Client(server.url) as client:
        with pytest.raises(APIError) as bad:
            client.chat("hi", model="scripted", options={"nope": 1}).text()
        assert bad.value.status == 422 and bad.value.code == "invalid_option"
        with pytest.raises(StreamFailed) as failed:
            client.chat("hi", model="scripted", options={"text": "a b c", "fail_after": 2}).text()
        assert failed.value.error.code == "upstream_error" and failed.value.text == "a b "


def test_conversation_continues_with_only_the_new_message(server: Server) -> None:
    with Client(server.url) as client:
        first = client.chat("one", model="scripted")
        first.text()
        second = client.chat("two", model="scripted", conversation_id=first.conversation_id)
        second.text()
        assert second.conversation_id == first.conversation_id
        roles = [m["role"] for m in client.conversation(first.conversation_id)["messages"]]
        assert roles == ["user", "assistant", "user", "assistant"]


def test_a_submit_whose_response_was_lost_is_retried_without_a_second_answer(
    server: Server,
) -> None:
    """The proxy passes the POST to the server, then cuts before any response byte:
    the client sends it again with the same Idempotency-Key and gets the first answer."""
    with cutting_proxy(_port(server), plan=[0]) as proxy, \
            Client(proxy.url, backoff=0.05) as client:
        text = client.chat("only once", model="scripted", options={"text": "one answer"}).text()
    assert proxy.connections >= 2 and text == "one answer"
    with Client(server.url) as direct:
        titles, cursor = [], None
        while True:
            page = direct.conversations(limit=100, cursor=cursor)
            titles += [c["title"] for c in page["conversations"]]
            if not (cursor := page["next_cursor"]):
                break
    assert titles.count("only once") == 1, "one conversation, one answer"


def test_async_cancel_and_read(server: Server) -> None:
    async def run() -> str:
        async with AsyncClient(server.url) as client:
            stream = client.chat("x", model="scripted", options={"text": "w " * 300, "delay_ms": 20})
            async for event in stream:
                if isinstance(event, Start):
                    assert await client.cancel(event.stream_id)
                if isinstance(event, Done):
                    return event.finish_reason
        return ""

    assert asyncio.run(run()) == "cancelled"
