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
from tokenrelay.events import Chunk, Finish, TextDelta, Usage
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
                    if choice.delta is not None and choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason is not None:
                        yield Finish("length" if choice.finish_reason == "length" else "stop")
        except openai.APIError as exc:
            raise _provider_error(exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise mid_stream_error(exc, "the upstream") from exc
        finally:
            # Cancel (or any end) closes the upstream HTTP response: the model stops.
            await response.close()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


def _arguments(request: ChatRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model or DEFAULT_MODEL,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
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
