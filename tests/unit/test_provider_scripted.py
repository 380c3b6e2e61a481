"""The scripted provider: deterministic, exact text, caps and failures."""

from __future__ import annotations

import pytest

from tokenrelay.events import Finish, TextDelta, Usage
from tokenrelay.providers import ChatRequest, Message, ProviderError, Registry
from tokenrelay.providers.scripted import ScriptedOptions, ScriptedProvider


def _request(content: str = "hi", **fields: object) -> ChatRequest:
    return ChatRequest(model="", messages=(Message("user", content),), **fields)  # type: ignore[arg-type]


async def _run(request: ChatRequest) -> list[object]:
    return [chunk async for chunk in ScriptedProvider().stream(request)]


async def test_the_same_request_gives_the_same_deltas_and_another_differs() -> None:
    first, again, other = await _run(_request()), await _run(_request()), await _run(_request("yo"))
    assert first == again
    assert [c for c in first if isinstance(c, TextDelta)] != [c for c in other if isinstance(c, TextDelta)]
    assert first[-1] == Finish("stop")


@pytest.mark.parametrize("text", [
    "one two  three", "  leading", "trailing  \n", "a\n\nb\r\nc\td", "", "single", "😀 emoji 字",
])
async def test_text_is_cut_after_each_whitespace_run_and_joins_back_exactly(text: str) -> None:
    chunks = await _run(_request(options=ScriptedOptions(text=text)))
    deltas = [c.text for c in chunks if isinstance(c, TextDelta)]
    assert "".join(deltas) == text
    assert all(d.strip() == "" or not d.rstrip().count(" ") for d in deltas)


async def test_max_tokens_caps_the_deltas_and_finishes_with_length() -> None:
    chunks = await _run(_request(max_tokens=2, options=ScriptedOptions(text="a b c")))
    assert [c.text for c in chunks if isinstance(c, TextDelta)] == ["a ", "b "]
    assert chunks[-1] == Finish("length")
    assert Usage(input_tokens=1, output_tokens=2) in chunks


async def test_fail_after_raises_an_upstream_error_after_n_deltas() -> None:
    seen: list[object] = []
    with pytest.raises(ProviderError) as error:
        async for chunk in ScriptedProvider().stream(
            _request(options=ScriptedOptions(text="a b c d", fail_after=2))
        ):
            seen.append(chunk)
    assert error.value.code == "upstream_error"
    assert seen == [TextDelta("a "), TextDelta("b ")]


def test_the_builtins_are_registered_through_the_entry_point_group() -> None:
    registry = Registry()
    assert {"scripted", "local", "openai", "anthropic"} <= set(registry.names)
    provider, model = registry.resolve("scripted/anything")
    assert isinstance(provider, ScriptedProvider) and model == "anything"
