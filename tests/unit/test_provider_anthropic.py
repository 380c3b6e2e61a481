"""Tests for `tokenrelay.providers.anthropic`, against Anthropic response bodies served
through the SDK's real HTTP stack (an `httpx2.MockTransport` under `AsyncAnthropic`).

The bodies in tests/fixtures/anthropic/ are not captures (the paid API cannot be reached
from here); they are written, byte for byte, in the wire format Anthropic documents: the
event flow, the "Basic streaming request" example (message_start, ping,
text_delta content deltas, message_delta with stop_reason and usage, message_stop) and
the in-stream `event: error` come from "Streaming Messages",
platform.claude.com/docs/en/build-with-claude/streaming; the JSON error bodies
(`{"type": "error", "error": {"type", "message"}, "request_id"}`) and their statuses
from "Errors", platform.claude.com/docs/en/api/errors. Ids and usage follow the shape
of current responses (message_start usage with cache fields, service_tier, inference_geo).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from tokenrelay.errors import InvalidRequest, TokenrelayError
from tokenrelay.events import Chunk, Finish, TextDelta, Usage
from tokenrelay.providers import ChatRequest, Message, ProviderError, Registry
from tokenrelay.providers.anthropic import AnthropicOptions, AnthropicProvider

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"
FAKE_KEY = "sk-ant-api03-test-key-not-real"
SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "request-id": "req_011CSHkZ4cVt8RwN2pYq6mJx",
}


def events(name: str) -> list[bytes]:
    """A fixture stream, one SSE event (ending in a blank line) per item."""
    return re.findall(rb".*?\n\n", (FIXTURES / name).read_bytes(), flags=re.DOTALL)


class RecordedBody(httpx2.AsyncByteStream):
    """A response body handed over one event per read, as a network delivers it; after
    the events it may raise (a cut connection) or wait forever (a model still busy)."""

    def __init__(self, parts: list[bytes], *, then: Exception | None = None, hang: bool = False):
        self.parts, self.then, self.hang = parts, then, hang
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
            await asyncio.sleep(0)
        if self.hang:
            await asyncio.Event().wait()
        if self.then is not None:
            raise self.then

    async def aclose(self) -> None:
        self.closed = True


def stream_response(body: RecordedBody | str) -> httpx2.Response:
    stream = RecordedBody(events(body)) if isinstance(body, str) else body
    return httpx2.Response(200, headers=SSE_HEADERS, stream=stream)


def error_response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = (FIXTURES / f"error_{status}.json").read_bytes()
    request_id = json.loads(body)["request_id"]
    return httpx2.Response(
        status,
        headers={"content-type": "application/json", "request-id": request_id, **(headers or {})},
        content=body,
    )


class Upstream:
    """A stand-in for api.anthropic.com: answers each request with the next response
    (or raises it, for a connection that fails), and keeps what it was sent."""

    def __init__(self, *answers: httpx2.Response | Exception):
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def body(self) -> dict[str, object]:
        return json.loads(self.requests[-1].content)


def provider_for(upstream: Upstream, *, max_retries: int = 0) -> AnthropicProvider:
    # No api_key argument: the SDK reads ANTHROPIC_API_KEY, as it does in production.
    # No retries unless a test is about them, so error tests do not sleep through backoff.
    client = anthropic.AsyncAnthropic(
        max_retries=max_retries,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(upstream)),
    )
    return AnthropicProvider(client=client)


def ask(*messages: Message, **fields: Any) -> ChatRequest:
    turns = messages or (Message("user", "Hello"),)
    return ChatRequest(model="claude-sonnet-5-5", messages=turns, **fields)


async def collect(provider: AnthropicProvider, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]


async def collect_until_error(
    provider: AnthropicProvider, request: ChatRequest
) -> tuple[list[Chunk], ProviderError]:
    received: list[Chunk] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in provider.stream(request):
            received.append(chunk)
    return received, caught.value


def text_of(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks if isinstance(chunk, TextDelta))


@pytest.fixture(autouse=True)
def anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fake key, and nothing else the SDK would pick up: no other ANTHROPIC_* variable,
    and a HOME without the profiles it reads from ~/.config/anthropic."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)


# --- a streamed answer ---------------------------------------------------------------


async def test_streams_the_answer_then_usage_then_finish() -> None:
    provider = provider_for(Upstream(stream_response("hello.sse")))

    chunks = await collect(provider, ask())

    assert chunks == [
        TextDelta("Hello"),
        TextDelta("! How can I help"),
        TextDelta(" you today?"),
        Usage(input_tokens=21, output_tokens=12),
        Finish("stop"),
    ]


async def test_max_tokens_stop_finishes_with_length_and_sends_the_limit() -> None:
    upstream = Upstream(stream_response("max_tokens.sse"))

    chunks = await collect(provider_for(upstream), ask(max_tokens=10))

    assert text_of(chunks) == "Rivers carve their way through stone not by force but"
    assert chunks[-2:] == [Usage(input_tokens=18, output_tokens=10), Finish("length")]
    assert upstream.body["max_tokens"] == 10


async def test_thinking_is_not_part_of_the_answer_and_cached_input_counts() -> None:
    chunks = await collect(provider_for(Upstream(stream_response("thinking.sse"))), ask())

    assert text_of(chunks) == "17 × 3 = 51"
    # input_tokens + cache_read_input_tokens: the prompt's full size (Anthropic, "Usage").
    assert Usage(input_tokens=40 + 2048, output_tokens=37) in chunks
    assert chunks[-1] == Finish("stop")


# --- what is sent --------------------------------------------------------------------


async def test_system_messages_go_to_the_system_parameter() -> None:
    upstream = Upstream(stream_response("hello.sse"))
    request = ask(
        Message("system", "You are terse."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("system", "Answer in French."),
        Message("user", "How are you?"),
        options=AnthropicOptions(stop_sequences=["\n\nHuman:"]),
    )

    await collect(provider_for(upstream), request)

    assert upstream.requests[0].url == "https://api.anthropic.com/v1/messages"
    assert upstream.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert upstream.body == {
        "model": "claude-sonnet-5-5",
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ],
        "max_tokens": 1024,  # Anthropic requires it; the request had none
        "stop_sequences": ["\n\nHuman:"],
        "stream": True,
    }


async def test_temperature_is_left_out_because_api_2026_10_21_rejects_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = Upstream(stream_response("hello.sse"), stream_response("hello.sse"))
    provider = provider_for(upstream)

    with caplog.at_level(logging.WARNING, logger="tokenrelay.providers.anthropic"):
        first = await collect(provider, ask(temperature=0.2))
        await collect(provider, ask(temperature=0.2))

    # This SDK speaks API version 2026-10-21, which answers 400 to temperature, top_p
    # and top_k. If the version changes, revisit what the provider sends.
    assert upstream.requests[0].headers["anthropic-version"] == "2026-10-21"
    assert not {"temperature", "top_p", "top_k"} & set(upstream.body)
    assert first[-1] == Finish("stop")
    assert [r.message for r in caplog.records if "temperature" in r.message] == [
        "Not sending temperature=0.2 to Anthropic: API version 2026-10-21 rejects it; "
        "the model uses its default sampling."
    ]


# --- errors before the first byte ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (400, "upstream_bad_request", "messages: at least one message is required"),
        (401, "upstream_auth", "invalid x-api-key. Check ANTHROPIC_API_KEY"),
        (403, "upstream_auth", "does not have permission to use the specified resource"),
        (404, "upstream_not_found", "model: claude-sonnet-9. Check the model name"),
        (429, "upstream_rate_limited", "would exceed the rate limit for your organization"),
        (500, "upstream_server_error", "Internal server error. Retry in a moment"),
        (529, "upstream_server_error", "Overloaded. Retry in a moment"),
    ],
)
async def test_error_answers_become_provider_errors_that_keep_the_upstream_message(
    status: int, code: str, says: str
) -> None:
    answer = error_response(status)
    request_id = answer.headers["request-id"]

    received, error = await collect_until_error(provider_for(Upstream(answer)), ask())

    assert received == []
    assert error.code == code
    assert f"Anthropic answered {status} " in error.message
    assert says in error.message
    assert request_id in error.message  # what Anthropic's support asks for


@pytest.mark.parametrize(
    ("failure", "code", "says"),
    [
        (
            httpx2.ConnectError("[Errno 111] Connection refused"),
            "upstream_disconnected",
            "Could not reach Anthropic at api.anthropic.com: ConnectError: [Errno 111] Connection",
        ),
        (
            httpx2.ConnectTimeout("timed out"),
            "upstream_timeout",
            "Anthropic (api.anthropic.com) did not answer in time. Retry in a moment.",
        ),
    ],
)
async def test_connection_failures_become_provider_errors(
    failure: Exception, code: str, says: str
) -> None:
    _, error = await collect_until_error(provider_for(Upstream(failure)), ask())

    assert error.code == code
    assert says in error.message


async def test_overload_before_the_first_byte_is_retried_and_the_answer_arrives() -> None:
    # `retry-after-ms` only keeps the test fast; the SDK backs off without it too.
    upstream = Upstream(error_response(529, {"retry-after-ms": "10"}), stream_response("hello.sse"))

    chunks = await collect(provider_for(upstream, max_retries=2), ask())

    assert len(upstream.requests) == 2
    assert text_of(chunks) == "Hello! How can I help you today?"


# --- errors mid-answer ---------------------------------------------------------------


async def test_an_error_event_mid_stream_ends_it_with_a_provider_error() -> None:
    received, error = await collect_until_error(
        provider_for(Upstream(stream_response("overloaded_mid_stream.sse"))), ask()
    )

    assert received == [TextDelta("Once upon")]
    assert error.code == "upstream_server_error"
    assert error.message.startswith(
        "Anthropic's stream failed mid-answer with overloaded_error: Overloaded. Retry in a moment."
    )


@pytest.mark.parametrize(
    ("cut", "code"),
    [
        (httpx2.RemoteProtocolError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        ), "upstream_disconnected"),
        (httpx2.ReadError("[Errno 104] Connection reset by peer"), "upstream_disconnected"),
        (httpx2.ReadTimeout("The read operation timed out"), "upstream_timeout"),
    ],
)
async def test_a_connection_cut_mid_stream_is_an_error_and_never_replayed(
    cut: Exception, code: str
) -> None:
    first_four = events("hello.sse")[:4]  # message_start, content_block_start, ping, "Hello"
    upstream = Upstream(stream_response(RecordedBody(first_four, then=cut)))

    received, error = await collect_until_error(provider_for(upstream, max_retries=2), ask())

    assert received == [TextDelta("Hello")]
    assert error.code == code
    assert type(cut).__name__ in error.message
    assert len(upstream.requests) == 1  # a replay would repeat "Hello" to the reader


async def test_a_stream_that_ends_without_message_stop_is_not_a_finished_answer() -> None:
    without_end = events("hello.sse")[:-2]  # a proxy closed it cleanly before message_delta
    received, error = await collect_until_error(
        provider_for(Upstream(stream_response(RecordedBody(without_end)))), ask()
    )

    assert text_of(received) == "Hello! How can I help you today?"
    assert not any(isinstance(chunk, Finish) for chunk in received)
    assert error.code == "upstream_disconnected"


# --- stopping ------------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream_response() -> None:
    body = RecordedBody(events("hello.sse")[:4], hang=True)  # the model is still writing
    provider = provider_for(Upstream(stream_response(body)))
    received: list[Chunk] = []
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for chunk in provider.stream(ask()):
            received.append(chunk)
            first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=5)
    assert not body.closed
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert body.closed
    assert received == [TextDelta("Hello")]


async def test_a_consumer_that_stops_reading_closes_the_upstream_response() -> None:
    body = RecordedBody(events("hello.sse")[:4], hang=True)
    stream = provider_for(Upstream(stream_response(body))).stream(ask())

    assert await anext(stream) == TextDelta("Hello")
    await stream.aclose()  # type: ignore[attr-defined]

    assert body.closed


# --- check and options ---------------------------------------------------------------


def test_without_a_key_the_model_is_unavailable_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    with pytest.raises(TokenrelayError) as caught:
        Registry().resolve("anthropic/claude-sonnet-5-5")

    assert (caught.value.code, caught.value.status) == ("provider_unavailable", 400)
    assert caught.value.message == "No ANTHROPIC_API_KEY set: export it, or use --model local."


def test_an_auth_token_instead_of_a_key_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "sk-ant-oat01-test-token-not-real")

    provider, model = Registry().resolve("anthropic/claude-sonnet-5-5")

    assert isinstance(provider, AnthropicProvider)
    assert model == "claude-sonnet-5-5"


async def test_streaming_without_a_key_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    upstream = Upstream(stream_response("hello.sse"))

    _, error = await collect_until_error(provider_for(upstream), ask())

    assert error.code == "upstream_auth"
    assert "No ANTHROPIC_API_KEY set" in error.message
    assert upstream.requests == []


def test_a_bare_anthropic_model_asks_for_a_model_name() -> None:
    with pytest.raises(TokenrelayError) as caught:
        Registry().resolve("anthropic")

    assert (caught.value.code, caught.value.status) == ("provider_unavailable", 400)
    assert "name a model: anthropic/claude-sonnet-5-5" in caught.value.message


@pytest.mark.parametrize("name", ["nope", "top_p", "top_k"])
def test_an_unknown_option_is_rejected_and_the_valid_ones_named(name: str) -> None:
    registry = Registry()
    provider, _ = registry.resolve("anthropic/claude-sonnet-5-5")

    with pytest.raises(InvalidRequest) as caught:
        registry.options(provider, {name: 1})

    assert caught.value.code == "invalid_option"
    assert name in caught.value.message
    assert "Valid options: stop_sequences, thinking_budget." in caught.value.message


def test_stop_sequences_is_a_valid_option() -> None:
    registry = Registry()
    provider, _ = registry.resolve("anthropic/claude-sonnet-5-5")

    assert registry.options(provider, {"stop_sequences": ["END"]}) == AnthropicOptions(
        stop_sequences=["END"]
    )
