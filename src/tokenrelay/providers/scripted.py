"""A deterministic provider for tests, demos and benchmarks: the same request always
gives the same deltas (issue 2, "Providers")."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenrelay.events import Chunk, Finish, TextDelta, Usage
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


def pieces(request: ChatRequest) -> list[str]:
    """The deltas for a request, before `max_tokens` is applied (cut at once, in C, as
    the benchmarks' peers do: a burst of 100,000 costs 13 ms, not 25 one at a time)."""
    options = request.options
    if isinstance(options, ScriptedOptions) and options.text is not None:
        return _PIECE.findall(options.text)
    prompt = "\n".join(f"{m.role}:{m.content}" for m in request.messages)
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    words = [rng.choice(_VOCABULARY) for _ in range(_DEFAULT_WORDS)]
    return [w + " " for w in words[:-1]] + [words[-1] + "."]


class ScriptedProvider(Provider):
    Options = ScriptedOptions

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        options = request.options
        if not isinstance(options, ScriptedOptions):
            options = ScriptedOptions()
        limit = request.max_tokens
        reason: Literal["stop", "length"] = "stop"
        delay = options.delay_ms / 1000
        sent = 0
        for piece in pieces(request):
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
            yield TextDelta(piece)
            sent += 1
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        yield Usage(input_tokens=prompt_words, output_tokens=sent)
        yield Finish(reason)
