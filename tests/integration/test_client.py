"""tokenrelay.Client and AsyncClient against a real server, through a proxy that cuts."""

from __future__ import annotations

import asyncio
import inspect
from urllib.parse import urlparse

import httpx
import pytest

from tokenrelay import (
    APIError, AsyncClient, Client, Delta, Done, Message, Start, StreamFailed, StreamInterrupted,
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


# --- a stream read twice (issue 12): it replays, it never asks the server again -------


class _Counting(httpx.HTTPTransport):
    """The real transport, keeping what went out: (method, path, Last-Event-ID)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, request.headers.get("last-event-id")))
        return super().handle_request(request)


class _AsyncCounting(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, request.headers.get("last-event-id")))
        return await super().handle_async_request(request)


def test_text_after_iterating_sends_no_second_request(server: Server) -> None:
    transport = _Counting()
    with Client(server.url, transport=transport) as client:
        stream = client.chat("hi", model="scripted", options={"text": TEXT})
        events = list(stream)
        assert stream.text() == TEXT
        assert list(stream) == events
    assert transport.sent == [("POST", "/api/chat", None)]
    assert stream.received == TEXT and stream.end == events[-1]


def test_an_attached_stream_iterated_then_text_gives_the_text(server: Server) -> None:
    with Client(server.url) as client:
        started = client.chat("hi", model="scripted", options={"text": TEXT})
        started.text()
        assert started.stream_id is not None
        transport = _Counting()
        with Client(server.url, transport=transport) as reader:
            stream = reader.stream(started.stream_id)
            events = list(stream)
            assert stream.text() == TEXT
    assert isinstance(events[0], Start) and isinstance(events[-1], Done)
    assert transport.sent == [("GET", f"/api/streams/{started.stream_id}", None)]


def test_a_loop_left_early_is_taken_up_where_it_stopped(server: Server) -> None:
    transport = _Counting()
    with Client(server.url, transport=transport) as client:
        stream = client.chat("hi", model="scripted", options={"text": TEXT, "delay_ms": 1})
        for event in stream:
            if isinstance(event, Delta):
                break
        assert stream.text() == TEXT, "the rest, and nothing twice"
    assert transport.sent == [("POST", "/api/chat", None),
                              ("GET", f"/api/streams/{stream.stream_id}", "2")]


async def test_the_async_stream_replays_too(server: Server) -> None:
    transport = _AsyncCounting()
    async with AsyncClient(server.url, transport=transport) as client:
        stream = client.chat("hi", model="scripted", options={"text": TEXT})
        events = [event async for event in stream]
        assert await stream.text() == TEXT
        assert [event async for event in stream] == events
    assert transport.sent == [("POST", "/api/chat", None)]


# --- AsyncClient has what Client has, and it works (issue 12) ---------------------------


def _methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


async def test_every_async_method_works_against_the_server(server: Server) -> None:
    assert _methods(AsyncClient) - {"aclose"} == _methods(Client) - {"close"}
    async with AsyncClient(server.url) as client:
        assert "scripted" in [m["id"] if isinstance(m, dict) else m
                              for m in (await client.models())["models"]]
        first = client.chat("async one", model="scripted", options={"text": "first"})
        assert await first.text() == "first"
        conversation_id = first.conversation_id
        assert conversation_id is not None
        again = client.regenerate(conversation_id, options={"text": "second"})
        assert await again.text() == "second" and again.conversation_id == conversation_id
        assert await client.stream(again.stream_id).text() == "second"  # type: ignore[arg-type]
        messages = (await client.conversation(conversation_id))["messages"]
        assert [m["content"] for m in messages] == ["async one", "first", "second"]
        assert (await client.rename(conversation_id, "Renamed"))["title"] == "Renamed"
        listed = (await client.conversations(limit=100))["conversations"]
        assert any(c["id"] == conversation_id for c in listed)
        assert await client.cancel(again.stream_id) is False, "it had ended"  # type: ignore[arg-type]
        await client.delete(conversation_id)
        with pytest.raises(APIError) as missing:
            await client.conversation(conversation_id)
    assert missing.value.status == 404


def test_regenerate_streams_a_new_answer_and_keeps_the_old(server: Server) -> None:
    with Client(server.url) as client:
        first = client.chat("again please", model="scripted", options={"text": "one"})
        assert first.text() == "one"
        assert first.conversation_id is not None
        again = client.regenerate(first.conversation_id, options={"text": "two"}, max_tokens=5)
        assert again.text() == "two" and again.stream_id != first.stream_id
        messages = client.conversation(first.conversation_id)["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "again please"), ("assistant", "one"), ("assistant", "two")]


SCRIPT = {"reasoning": "Paris first, then Oslo.", "text": "Checking.",
          "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                         {"name": "get_weather", "arguments": {"city": "Oslo"}}]}
WEATHER = {"type": "function", "function": {"name": "get_weather",
                                            "parameters": {"type": "object"}}}


def test_reasoning_and_tool_calls_through_a_cutting_proxy(server: Server) -> None:
    with cutting_proxy(_port(server), cut_after=400, cuts=3) as proxy, \
            Client(proxy.url, backoff=0.01) as client:
        stream = client.chat("Weather?", model="scripted", tools=[WEATHER],
                             options={**SCRIPT, "delay_ms": 1})
        kinds = {type(event).__name__ for event in stream}
        assert proxy.cut == 3, "the proxy really cut the connections"
        assert {"Reasoning", "ToolCall", "Done"} <= kinds
        assert stream.reasoning() == SCRIPT["reasoning"] and stream.text() == SCRIPT["text"]
        calls = stream.tool_calls()
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Oslo"}')]
    assert all(c.id.startswith("call_") for c in calls)
    assert stream.end is not None and stream.end.finish_reason == "tool_calls"


async def test_the_async_stream_assembles_the_same_calls(server: Server) -> None:
    async with AsyncClient(server.url) as client:
        stream = client.chat("Weather?", model="scripted", tools=[WEATHER], options=SCRIPT)
        calls = await stream.tool_calls()
        assert await stream.reasoning() == SCRIPT["reasoning"]
    assert [c.arguments for c in calls] == ['{"city": "Paris"}', '{"city": "Oslo"}']


def test_a_tool_result_goes_back_as_a_message(server: Server) -> None:
    with Client(server.url) as client:
        first = client.chat("Weather?", model="scripted", tools=[WEATHER], options=SCRIPT)
        call = first.tool_calls()[0]
        follow = client.chat([Message("tool", "18 °C", tool_call_id=call.id)], model="scripted",
                             conversation_id=first.conversation_id)
        assert follow.text()
        stored = client.conversation(first.conversation_id or "")
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert stored["messages"][1]["tool_calls"][0]["id"] == call.id
