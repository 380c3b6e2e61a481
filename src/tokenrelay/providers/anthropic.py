"""Anthropic's Messages API, streamed through the official `anthropic` SDK.

Credentials come from the environment as the SDK reads them: `ANTHROPIC_API_KEY`
(or `ANTHROPIC_AUTH_TOKEN`, or an `anthropic` profile), and `ANTHROPIC_BASE_URL` for
another endpoint. Anthropic has no default model, so a request names one:
`anthropic/claude-sonnet-5-5`.

The SDK (2.x) speaks API version 2026-10-21, which removed `temperature`, `top_p` and
`top_k`: a request that sends any of them gets a 400, even at the default value
(platform.claude.com/docs/en/api/migration-2026-10-21). So this provider never sends
them: a request's `temperature` is left out (with one warning in the log), and the only
option is `stop_sequences`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.errors import TokenrelayError
from tokenrelay.events import Chunk, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from tokenrelay.providers import ChatRequest, Message, Provider, ProviderError, Tool
from tokenrelay.providers._transport import TRANSPORT_ERRORS, mid_stream_error

log = logging.getLogger(__name__)

# Anthropic requires `max_tokens`; this is what a request that leaves it out gets.
DEFAULT_MAX_TOKENS = 1024
# Not claude-sonnet-4-5 (DESIGN.md's example): this SDK lists it as deprecated, with its
# end of life on 2026-11-30, so it is poor advice in an error message.
EXAMPLE_MODEL = "anthropic/claude-sonnet-5-5"

_NO_KEY = "No ANTHROPIC_API_KEY set: export it, or use --model local."
_NO_MODEL = f"Anthropic has no default model; name a model: {EXAMPLE_MODEL}."

# Stop reasons that mean the answer was cut short by a limit rather than finished.
_LENGTH_STOPS = frozenset({"max_tokens", "model_context_window_exceeded"})

# An `error` event inside a stream arrives on a 200 response, so only its type says what
# went wrong; these are the statuses the same types have as HTTP errors
# (platform.claude.com/docs/en/api/errors).
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# (ProviderError code, what the user can do) by upstream HTTP status.
_BY_STATUS = {
    400: ("upstream_bad_request", ""),
    401: ("upstream_auth", "Check ANTHROPIC_API_KEY."),
    403: ("upstream_auth", "Check ANTHROPIC_API_KEY and what it may use."),
    404: ("upstream_not_found", f"Check the model name, e.g. {EXAMPLE_MODEL}."),
    408: ("upstream_timeout", "Retry in a moment."),
    429: ("upstream_rate_limited", "Wait and retry, or lower the request rate."),
}
_SERVER_ERROR = ("upstream_server_error", "Retry in a moment.")
_OTHER_ERROR = ("upstream_error", "")


class AnthropicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_sequences: list[str] | None = Field(
        None, description="Stop when the model writes one of these strings."
    )
    thinking_budget: int | None = Field(
        None, ge=1024, description="Extended thinking: up to this many tokens of reasoning "
        "(streamed as `reasoning` events); max_tokens must be larger."
    )


class AnthropicProvider(Provider):
    Options = AnthropicOptions

    def __init__(self, *, client: anthropic.AsyncAnthropic | None = None):
        self._owns_client = client is None
        self._unavailable = _NO_KEY
        self._warned_temperature = False
        if client is None:
            try:
                # Two retries (the SDK's default), with backoff and `retry-after`, on a
                # failed connection or a 408/409/429/5xx answer. They all happen before
                # the first byte: a stream that has started is never replayed, so text
                # is never doubled; a cut mid-answer is an `upstream_disconnected` error.
                client = anthropic.AsyncAnthropic(max_retries=2)
            except anthropic.AnthropicError as exc:  # e.g. a broken profile on disk
                self._unavailable = f"Anthropic credentials could not be loaded: {exc}"
        self._client = client

    def available_models(self, name: str) -> list[str]:
        if self._client is None or not _has_credentials(self._client):
            return []
        return [EXAMPLE_MODEL]

    def check(self, model: str) -> None:
        if self._client is None or not _has_credentials(self._client):
            raise TokenrelayError(self._unavailable, code="provider_unavailable", status=400)
        if not model:
            raise TokenrelayError(_NO_MODEL, code="provider_unavailable", status=400)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        if self._client is None or not _has_credentials(self._client):
            # Without credentials the SDK raises a bare TypeError; say what to do instead.
            raise ProviderError("upstream_auth", self._unavailable)
        try:
            events = await self._client.messages.create(stream=True, **self._arguments(request))
        except anthropic.APIError as exc:
            raise _provider_error(exc) from exc
        # Leaving the block, however it happens (end, error, the consuming task
        # cancelled), closes the HTTP response: that is what stops the model upstream.
        async with events:
            try:
                async for chunk in _chunks(events):
                    yield chunk
            except anthropic.APIError as exc:
                raise _provider_error(exc) from exc
            except TRANSPORT_ERRORS as exc:
                raise mid_stream_error(exc, "Anthropic") from exc

    def label(self, model: str) -> str:
        return f"{model} · Anthropic"

    def check_tools(self, model: str) -> None:
        """Claude calls tools; OpenAI-format definitions are translated (`_tools`)."""

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = _split_system(request.messages)
        max_tokens = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
        arguments: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": max_tokens,
        }
        if system:
            arguments["system"] = system
        options = request.options
        if isinstance(options, AnthropicOptions) and options.stop_sequences:
            arguments["stop_sequences"] = list(options.stop_sequences)
        if isinstance(options, AnthropicOptions) and options.thinking_budget:
            arguments["thinking"] = {"type": "enabled", "budget_tokens": options.thinking_budget}
        if request.tools:
            arguments["tools"] = [_tool(tool) for tool in request.tools]
            choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
            if choice is not None:
                arguments["tool_choice"] = choice
        if request.temperature is not None and not self._warned_temperature:
            self._warned_temperature = True
            log.warning(
                "Not sending temperature=%s to Anthropic: API version 2026-10-21 "
                "rejects it; the model uses its default sampling.",
                request.temperature,
            )
        return arguments


def _has_credentials(client: anthropic.AsyncAnthropic) -> bool:
    return bool(client.api_key or client.auth_token or client.credentials is not None)


def _split_system(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """The Messages API has no `system` role: system text goes in its own parameter.
    Tool results become `tool_result` blocks of a user turn (consecutive ones in one
    turn, as the API requires); assistant tool calls become `tool_use` blocks."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            result = {"type": "tool_result", "tool_use_id": message.tool_call_id,
                      "content": message.content}
            if turns and turns[-1]["role"] == "user" and _is_tool_results(turns[-1]):
                turns[-1]["content"].append(result)
            else:
                turns.append({"role": "user", "content": [result]})
        elif message.role == "assistant" and (message.tool_calls or message.reasoning_signature):
            turns.append({"role": "assistant", "content": _assistant_blocks(message)})
        else:
            turns.append({"role": message.role, "content": message.content})
    return system, turns


def _is_tool_results(turn: dict[str, Any]) -> bool:
    content = turn["content"]
    return isinstance(content, list) and all(b.get("type") == "tool_result" for b in content)


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    """An assistant turn as blocks: its signed thinking first (Anthropic needs it back
    to continue a tool loop with thinking on), its text, then its tool calls."""
    blocks: list[dict[str, Any]] = []
    if message.reasoning_signature:
        blocks.append({"type": "thinking", "thinking": message.reasoning,
                       "signature": message.reasoning_signature})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": _arguments_object(call.arguments)})
    return blocks


def _arguments_object(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"arguments": arguments}  # the model wrote no JSON: keep what it wrote


def _tool(tool: Tool) -> dict[str, Any]:
    schema = dict(tool.parameters) if tool.parameters else {"type": "object", "properties": {}}
    return {"name": tool.name, "input_schema": schema,
            **({"description": tool.description} if tool.description else {})}


def _tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    """OpenAI's tool_choice as Anthropic's: auto, required -> any, none, or one tool."""
    if choice is None and parallel is not False:
        return None
    if isinstance(choice, dict):
        translated: dict[str, Any] = {"type": "tool",
                                      "name": (choice.get("function") or {}).get("name", "")}
    else:
        translated = {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}
    if parallel is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated


async def _chunks(events: AsyncIterator[Any]) -> AsyncIterator[Chunk]:
    """Turn raw Messages stream events into chunks. The flow is `message_start`, content
    blocks (start, deltas, stop), `message_delta` (stop reason, usage), `message_stop`
    (platform.claude.com/docs/en/build-with-claude/streaming). Blocks: `text`,
    `thinking` (its `thinking_delta`s are reasoning; a `signature_delta` closes it),
    `tool_use` (id and name at its start, then `input_json_delta` pieces); `ping` and
    other block types are not part of the answer."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None
    #: content block index -> tool call index (tool calls are numbered from 0)
    calls: dict[int, int] = {}
    async for event in events:
        if event.type == "content_block_delta":
            chunk = _delta(event, calls)
            if chunk is not None:
                yield chunk
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                calls[event.index] = len(calls)
                yield ToolCallDelta(calls[event.index], block.id, block.name)
        elif event.type == "message_start":
            input_tokens = _input_tokens(event.message.usage)
        elif event.type == "message_delta":
            stop_reason = event.delta.stop_reason or stop_reason
            output_tokens = event.usage.output_tokens
            input_tokens = _input_tokens(event.usage) or input_tokens
        elif event.type == "message_stop":
            yield Usage(input_tokens=input_tokens, output_tokens=output_tokens)
            yield Finish(_finish(stop_reason))
            return
    raise ProviderError(
        "upstream_disconnected",
        "Anthropic's stream ended before the answer was complete (no message_stop).",
    )


def _delta(event: Any, calls: dict[int, int]) -> Chunk | None:
    delta = event.delta
    if delta.type == "text_delta":
        return TextDelta(delta.text) if delta.text else None
    if delta.type == "thinking_delta":
        return ReasoningDelta(delta.thinking) if delta.thinking else None
    if delta.type == "signature_delta":
        return ReasoningDelta("", signature=delta.signature)
    if delta.type == "input_json_delta" and event.index in calls and delta.partial_json:
        return ToolCallDelta(calls[event.index], arguments=delta.partial_json)
    return None


def _finish(stop_reason: str | None) -> Any:
    if stop_reason in _LENGTH_STOPS:
        return "length"
    return "tool_calls" if stop_reason == "tool_use" else "stop"


def _input_tokens(usage: Any) -> int | None:
    # The prompt's size is the sum of the uncached, cache-written and cache-read parts.
    if usage.input_tokens is None:
        return None
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return int(usage.input_tokens) + cached


def _provider_error(exc: anthropic.APIError) -> ProviderError:
    host = exc.request.url.host
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(
            "upstream_timeout", f"Anthropic ({host}) did not answer in time. Retry in a moment."
        )
    if isinstance(exc, anthropic.APIConnectionError):
        cause = _describe(exc.__cause__ or exc)
        return ProviderError(
            "upstream_disconnected", f"Could not reach Anthropic at {host}: {cause}"
        )
    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(exc)
    return ProviderError("upstream_error", f"Anthropic sent something unexpected: {exc.message}")


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    kind = exc.type or "error"
    upstream = (exc.api_message or _body_text(exc.body)).rstrip(".")
    if exc.status_code < 400:  # an `error` event inside a stream that began with 200
        status = _ERROR_TYPE_STATUS.get(kind, 500)
        what = f"Anthropic's stream failed mid-answer with {kind}: {upstream}."
    else:
        status = exc.status_code
        what = f"Anthropic answered {status} {kind}: {upstream}."
    code, hint = _BY_STATUS.get(status) or (_SERVER_ERROR if status >= 500 else _OTHER_ERROR)
    request_id = f" (request-id {exc.request_id})" if exc.request_id else ""
    return ProviderError(code, " ".join(filter(None, (what, hint))) + request_id)


def _body_text(body: object) -> str:
    text = body if isinstance(body, str) else repr(body)
    return text[:200] or "no details"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
