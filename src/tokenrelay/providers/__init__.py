"""Providers turn a `ChatRequest` into an async iterator of typed chunks.

Each backend is one module; all of them, the built-ins included, are registered through
the `tokenrelay.providers` entry-point group, so a third party adds one the same way:

    [project.entry-points."tokenrelay.providers"]
    mine = "my_package.provider:MyProvider"

A model name is `provider/model` (`openai/gpt-4o-mini`) or a bare provider name for its
default model (`local`, `scripted`).
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tokenrelay.errors import InvalidRequest, TokenrelayError
from tokenrelay.events import Chunk
from tokenrelay.messages import Message

__all__ = [
    "ChatRequest",
    "Fitted",
    "Message",
    "Tool",
    "NoOptions",
    "Provider",
    "ProviderError",
    "Registry",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "tokenrelay.providers"
@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call (OpenAI's function-tool format, flattened):
    `parameters` is its arguments' JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None


#: "auto", "none", "required", or {"type": "function", "function": {"name": ...}}
ToolChoice = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a provider is asked: `model` is the part after `provider/` ("" for default)."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    options: BaseModel | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    #: OpenAI-style ("minimal", "low", "medium", "high"), for providers that have it
    reasoning_effort: str | None = None


@dataclass(frozen=True, slots=True)
class Fitted:
    """A request as the model can take it (`Provider.fit`)."""

    request: ChatRequest
    #: earlier messages left out so that the rest fits the model's context window
    dropped: int = 0


class ProviderError(Exception):
    """An upstream failure, with a stable `code` that clients can branch on.

    Codes: `upstream_auth`, `upstream_rate_limited`, `upstream_server_error`,
    `upstream_timeout`, `upstream_disconnected`, `upstream_bad_request`,
    `upstream_not_found`, `upstream_error`, `model_load_failed`.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(abc.ABC):
    """One backend. Instances are made once per server and shared by all requests."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def check(self, model: str) -> None:
        """Raise `TokenrelayError` if a request for `model` cannot be served (say, no
        API key), so that the caller gets a 4xx instead of a stream that fails."""

    def check_tools(self, model: str) -> None:
        """Raise `TokenrelayError` (`tools_unsupported`) if `model` cannot be offered
        tools; a provider that can call them overrides this."""
        raise InvalidRequest(
            f"This model cannot call tools ({type(self).__name__} has no tool calling): "
            "leave 'tools' out, or use a model that has them (openai/..., anthropic/...).",
            code="tools_unsupported", status=400)

    def label(self, model: str) -> str | None:
        """A readable name for `model` (the part after `provider/`), for a picker."""
        return None

    def available_models(self, name: str) -> list[str]:
        """Full model names (`name` or `name/model`) this provider can serve now, as
        known without a network call; what a model picker offers."""
        try:
            self.check("")
        except TokenrelayError:
            return []
        return [name]

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Yield the answer as chunks; raise `ProviderError` for upstream failures.

        Cancelling the consuming task must stop the work within one token."""

    async def fit(self, request: ChatRequest) -> Fitted:
        """The request as the model can take it: a provider that knows its context
        window leaves the oldest turns out (keeping system prompts and the newest) and
        raises `TokenrelayError` (`context_length_exceeded`, 400) when even the newest
        message cannot fit. Called before the stream starts. Default: as it is."""
        return Fitted(request)

    async def warm(self, model: str) -> None:
        """Get ready to serve `model` (load weights) before the first request asks."""

    async def aclose(self) -> None:
        """Release what the provider holds (models, HTTP pools); stop running work."""


ProviderFactory = Callable[[], Provider]


def _entry_point_factories() -> dict[str, ProviderFactory]:
    return {ep.name: ep.load for ep in entry_points(group=ENTRY_POINT_GROUP)}


class Registry:
    """Resolves model names to provider instances, made lazily and kept."""

    def __init__(self, factories: Mapping[str, ProviderFactory] | None = None):
        self._factories: dict[str, Callable[[], Any]] = dict(
            factories if factories is not None else _entry_point_factories()
        )
        self._instances: dict[str, Provider] = {}
        #: providers load in a thread (`load`), or on the loop if asked for without it:
        #: one at a time, each once
        self._loading = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def resolve(self, model: str) -> tuple[Provider, str]:
        """`provider/model` -> (provider instance, model part). Raises InvalidRequest."""
        name, _, sub = model.partition("/")
        if name not in self._factories:
            raise InvalidRequest(
                f"Unknown model {model!r}: use one of the providers "
                f"{', '.join(self.names)} (as 'provider' or 'provider/model').",
                code="unknown_model",
            )
        provider = self._instances.get(name)
        if provider is None:
            provider = self._load(name)
        provider.check(sub)
        return provider, sub

    async def load(self, model: str) -> None:
        """Import and create the provider of `model` in a thread, if not done yet:
        importing an SDK takes a second, which on the event loop would stall every
        stream. Unknown names are left to `resolve` to refuse."""
        name = model.partition("/")[0]
        if name in self._factories and name not in self._instances:
            await asyncio.to_thread(self._load, name)

    def _load(self, name: str) -> Provider:
        with self._loading:
            loaded = self._instances.get(name)
            return loaded if loaded is not None else self._create(name)

    def _create(self, name: str) -> Provider:
        target = self._factories[name]()
        # An entry point loads to the class; a factory passed in may return an instance.
        provider = target() if isinstance(target, type) else target
        if not isinstance(provider, Provider):
            raise TokenrelayError(
                f"Provider {name!r} is not a tokenrelay.providers.Provider", status=500
            )
        self._instances[name] = provider
        return provider

    def label(self, model: str) -> str:
        """A readable name for the full model name `model`: its provider's, or the name."""
        name, _, sub = model.partition("/")
        provider = self._instances.get(name)
        try:
            return (provider.label(sub) if provider else None) or model
        except Exception:  # a broken plugin still gets its name shown
            return model

    def available_models(self) -> list[str]:
        models: list[str] = []
        for name in self.names:
            try:
                provider = self._instances.get(name) or self._load(name)
                models += provider.available_models(name)
            except Exception:  # a broken plugin must not hide the others
                continue
        return models

    @staticmethod
    def option_names(provider: Provider) -> frozenset[str]:
        """The options `provider` takes."""
        return frozenset(provider.Options.model_fields)

    def options(self, provider: Provider, options: Mapping[str, Any]) -> BaseModel:
        """Validate provider options; an unknown or bad one is a 422 that names it."""
        try:
            return provider.Options.model_validate(dict(options))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
                for err in exc.errors()
            )
            valid = ", ".join(provider.Options.model_fields) or "none"
            raise InvalidRequest(
                f"Bad option for this provider ({problems}). Valid options: {valid}.",
                code="invalid_option",
            ) from None

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        self._instances.clear()
