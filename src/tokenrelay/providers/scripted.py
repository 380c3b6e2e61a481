"""A deterministic provider for tests, demos and benchmarks: the same request always
gives the same deltas (issue 2, "Providers")."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.events import Chunk, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from tokenrelay.providers import ChatRequest, Provider, ProviderError

_DEFAULT_WORDS = 24
# Cut after each run of whitespace, so the pieces join back to exactly the text.
_PIECE = re.compile(r"\S*\s+|\S+")
_VOCABULARY = (
    "the stream carries each token as it comes and a reader may join late or leave "
    "early yet nothing is lost because every event has a number in the log"
).split()


class ScriptedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_ms: float = Field(0, ge=0, le=60_000, description="Pause before each delta.")
    fail_after: int | None = Field(
        None, ge=0, description="Raise an upstream error after this many deltas."
    )
    text: str | None = Field(None, description="Emit exactly this text.")
    reasoning: str | None = Field(None, description="Emit this reasoning before the text.")
    tool_calls: list[ScriptedCall] | None = Field(
        None, description="After the text, call these tools (arguments streamed in pieces).")


class ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    #: JSON text, or an object (serialized)
    arguments: str | dict[str, Any] = "{}"

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


#: a tool call's arguments stream in pieces this long, as models write them
ARGUMENT_PIECE = 8


def pieces(request: ChatRequest) -> Iterator[str]:
    """The deltas for a request, before `max_tokens` is applied. A text is cut as it
    is sent, so an open stream holds its next piece only, as a real upstream does
    (issue 16: the 40 pieces of a benchmark's stream cut at once were 2.4 kB of its
    memory). A burst of 100,000 costs 25 ms this way, 13 ms cut at once by findall;
    `finditer` would hold a regex scanner per stream (1.6 kB)."""
    options = request.options
    if isinstance(options, ScriptedOptions) and options.text is not None:
        return _cut(options.text)
    prompt = "\n".join(f"{m.role}:{m.content}" for m in request.messages)
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    words = [rng.choice(_VOCABULARY) for _ in range(_DEFAULT_WORDS)]
    return iter([w + " " for w in words[:-1]] + [words[-1] + "."])


def _cut(text: str) -> Iterator[str]:
    match, position, end = _PIECE.match, 0, len(text)
    while position < end:
        found = match(text, position)
        assert found is not None  # the pattern matches any non-empty rest
        position = found.end()
        yield found.group()


def _tool_call_pieces(calls: list[ScriptedCall]) -> Iterator[ToolCallDelta]:
    """Each call's id and name first, then its arguments in pieces; parallel calls
    interleave by index, as models stream them."""
    streams = []
    for index, call in enumerate(calls):
        text = call.arguments_text()
        digest = hashlib.sha256(f"{index}:{call.name}:{text}".encode()).hexdigest()[:24]
        parts = [text[i:i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)]
        first = ToolCallDelta(index, f"call_{digest}", call.name, parts[0] if parts else "")
        streams.append([first, *(ToolCallDelta(index, arguments=p) for p in parts[1:])])
    for round_ in range(max((len(s) for s in streams), default=0)):
        for stream in streams:
            if round_ < len(stream):
                yield stream[round_]


def _chunks(request: ChatRequest, options: ScriptedOptions) -> Iterator[Chunk]:
    if options.reasoning:
        yield from (ReasoningDelta(piece) for piece in _PIECE.findall(options.reasoning))
    for piece in pieces(request):
        yield TextDelta(piece)
    yield from _tool_call_pieces(list(options.tool_calls or ()))


class ScriptedProvider(Provider):
    Options = ScriptedOptions

    def check_tools(self, model: str) -> None:
        """Tools are accepted; the calls it makes are its `tool_calls` option."""

    def available_models(self, name: str) -> list[str]:
        """Not offered to a picker (issue 14: a new user picked it and got word salad);
        a server started with --model scripted lists it, as its default."""
        return []

    def label(self, model: str) -> str:
        return "Scripted (deterministic test model)"

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        options = request.options
        if not isinstance(options, ScriptedOptions):
            options = ScriptedOptions()
        limit = request.max_tokens
        reason: Literal["stop", "length", "tool_calls"] = (
            "tool_calls" if options.tool_calls else "stop")
        delay = options.delay_ms / 1000
        sent = 0
        for chunk in _chunks(request, options):
            if limit is not None and sent >= limit:
                reason = "length"
                break
            if options.fail_after is not None and sent >= options.fail_after:
                raise ProviderError("upstream_error", f"scripted failure after {sent} deltas")
            if delay:
                await asyncio.sleep(delay)
            # With no delay the text is a burst already in hand, as when one network
            # read holds many tokens: no suspension per delta (the generation gives
            # the loop its turn, and cancellation its chance, at least every ~1 ms).
            yield chunk
            sent += 1
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        yield Usage(input_tokens=prompt_words, output_tokens=sent)
        yield Finish(reason)
