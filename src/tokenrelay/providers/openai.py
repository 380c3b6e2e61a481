"""OpenAI, and every server that speaks its chat completions API (vLLM, Ollama,
llama.cpp's server, LM Studio, another tokenrelay), through the official SDK.

`OPENAI_API_KEY` and `OPENAI_BASE_URL` come from the environment, as the SDK reads them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.errors import TokenrelayError
from tokenrelay.events import Chunk, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from tokenrelay.messages import Message
from tokenrelay.providers import ChatRequest, Provider, ProviderError
from tokenrelay.providers._transport import TRANSPORT_ERRORS, mid_stream_error

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)


class OpenAIProvider(Provider):
    Options = OpenAIOptions

    def __init__(self, *, client: openai.AsyncOpenAI | None = None):
        self._client = client

    def check(self, model: str) -> None:
        if self._client is None and not os.environ.get("OPENAI_API_KEY"):
            raise TokenrelayError(
                "No OPENAI_API_KEY set: export it (and OPENAI_BASE_URL for an "
                "OpenAI-compatible server), or use --model local.",
                code="provider_unavailable",
            )

    def available_models(self, name: str) -> list[str]:
        try:
            self.check("")
        except TokenrelayError:
            return []
        return [f"{name}/{DEFAULT_MODEL}"]

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            # Retries happen only before the first byte; a stream cut midway is an
            # error event, never a silent replay that could double the text.
            self._client = openai.AsyncOpenAI(max_retries=2, timeout=openai.Timeout(60, connect=10))
        return self._client

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        try:
            response = await self.client.chat.completions.create(**_arguments(request))
        except openai.APIError as exc:
            raise _provider_error(exc) from exc
        try:
            async for chunk in response:
                if chunk.usage is not None:
                    yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices[:1]:
                    if choice.delta is not None:
                        for piece in _pieces(choice.delta):
                            yield piece
                    if choice.finish_reason is not None:
                        yield Finish(_FINISH.get(choice.finish_reason, "stop"))
        except openai.APIError as exc:
            raise _provider_error(exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise mid_stream_error(exc, "the upstream") from exc
        finally:
            # Cancel (or any end) closes the upstream HTTP response: the model stops.
            await response.close()

    def label(self, model: str) -> str:
        where = "OpenAI" if not os.environ.get("OPENAI_BASE_URL") else "OpenAI-compatible"
        return f"{model or DEFAULT_MODEL} · {where}"

    def check_tools(self, model: str) -> None:
        """OpenAI and the compatible servers take `tools` (a server without them says so
        with a 400, passed on as `upstream_bad_request`)."""

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


#: OpenAI's finish reasons, as tokenrelay's (`content_filter` ends the answer as a stop)
_FINISH: dict[str, Any] = {"length": "length", "tool_calls": "tool_calls",
                           "function_call": "tool_calls"}
#: where reasoning arrives: DeepSeek's API (and vLLM before 2025) call the field
#: `reasoning_content`, vLLM and Ollama now `reasoning`; both are in use
_REASONING_FIELDS = ("reasoning_content", "reasoning")


def _pieces(delta: Any) -> list[Chunk]:
    """A chunk's delta as tokenrelay chunks: reasoning, then text, then tool calls."""
    pieces: list[Chunk] = []
    extra = delta.model_extra or {}
    for name in _REASONING_FIELDS:
        reasoning = getattr(delta, name, None) or extra.get(name)
        if isinstance(reasoning, str) and reasoning:
            pieces.append(ReasoningDelta(reasoning))
            break  # a server that sends both sends the same text twice
    if delta.content:
        pieces.append(TextDelta(delta.content))
    for call in delta.tool_calls or ():
        function = call.function
        pieces.append(ToolCallDelta(call.index, call.id, function.name if function else None,
                                    (function.arguments or "") if function else ""))
    return pieces


def _message(message: Message) -> dict[str, Any]:
    """A turn in the chat completions format; earlier reasoning is left out (OpenAI
    and the compatible servers do not take it back)."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    turn: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        turn["content"] = message.content or None
        turn["tool_calls"] = [call.openai() for call in message.tool_calls]
    return turn


def _arguments(request: ChatRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model or DEFAULT_MODEL,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        arguments["tools"] = [{"type": "function", "function": {
            "name": tool.name,
            **({"description": tool.description} if tool.description else {}),
            **({"parameters": dict(tool.parameters)} if tool.parameters is not None else {}),
        }} for tool in request.tools]
        if request.tool_choice is not None:
            arguments["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            arguments["parallel_tool_calls"] = request.parallel_tool_calls
    if request.reasoning_effort is not None:
        arguments["reasoning_effort"] = request.reasoning_effort
    if request.max_tokens is not None:
        arguments["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    if isinstance(request.options, OpenAIOptions):
        arguments.update(request.options.model_dump(exclude_none=True))
    return arguments


def _provider_error(exc: openai.APIError) -> ProviderError:
    upstream = getattr(exc, "message", str(exc))
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("upstream_timeout", f"The upstream did not answer in time: {upstream}")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("upstream_disconnected", f"Could not reach the upstream: {upstream}")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError("upstream_auth", f"The upstream refused the API key: {upstream}")
    if isinstance(exc, openai.RateLimitError):
        return ProviderError("upstream_rate_limited", f"The upstream is rate limiting: {upstream}")
    if isinstance(exc, openai.NotFoundError):
        return ProviderError("upstream_not_found", f"The upstream has no such model: {upstream}")
    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return ProviderError("upstream_bad_request", f"The upstream rejected the request: {upstream}")
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return ProviderError("upstream_server_error", f"The upstream failed ({exc.status_code}): {upstream}")
    return ProviderError("upstream_error", f"The upstream failed: {upstream}")
