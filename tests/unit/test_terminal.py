"""The terminal chat's pieces without a terminal: what the live view prints for good
as an answer grows, and what a pipe gets."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console
from rich.markdown import Markdown

from tokenrelay.terminal.render import LiveAnswer, tool_call_line
from tokenrelay.terminal.session import PlainAnswer

WIDTH, HEIGHT = 40, 12

DOCUMENT = (
    "# A title\n\nA first paragraph that is long enough to wrap over a few lines of "
    "the narrow console.\n\n## A section\n\n- one\n- two, also long enough to wrap "
    "at forty columns\n\n```python\nx = 1\ny = 2\n```\n\n1. first\n2. second\n\n"
    "> a quote\n\n---\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    + "A tall paragraph of many words " * 40 + "\n\nThe end, with **bold**.\n"
)


def _console() -> Console:
    return Console(file=io.StringIO(), width=WIDTH, height=HEIGHT, force_terminal=True,
                   color_system=None)


def _text(lines: list) -> list[str]:
    return ["".join(segment.text for segment in line).rstrip() for line in lines]


def _grow(view: LiveAnswer, pieces: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Feed pieces, settling after each as the painter would (its _settle, without its
    thread, so that the test picks where the ticks fall); the lines printed for good,
    and each live region drawn on the way."""
    printed: list[str] = []
    regions: list[list[str]] = []
    for kind, piece in pieces:
        view.add_reasoning(piece) if kind == "reasoning" else view.add_text(piece)
        done, live = view._settle(final=False)
        printed += _text(done)
        regions.append(_text(live))
    done, _ = view._settle(final=True)
    return printed + _text(done), regions


def _whole(markdown: str) -> list[str]:
    console = _console()
    return _text(console.render_lines(Markdown(markdown), console.options, pad=False))


def _cut(text: str, rng: random.Random) -> list[str]:
    pieces, at = [], 0
    while at < len(text):
        step = rng.randint(1, 30)
        pieces.append(text[at:at + step])
        at += step
    return pieces


@pytest.mark.parametrize("seed", range(8))
def test_an_answer_printed_as_it_grows_is_the_answer_rendered_whole(seed: int) -> None:
    pieces = [("text", piece) for piece in _cut(DOCUMENT, random.Random(seed))]
    printed, regions = _grow(LiveAnswer(_console()), pieces)
    assert printed == _whole(DOCUMENT), "each line once, as Markdown renders the whole"
    assert max(map(len, regions)) <= HEIGHT - 2, "the live region never leaves the screen"


def test_reasoning_comes_first_dimmed_then_a_blank_line_then_the_answer() -> None:
    reasoning = "First I think.\n\nThen I think some more, long enough to wrap twice " \
                "at forty columns."
    pieces = [("reasoning", piece) for piece in _cut(reasoning, random.Random(1))]
    pieces += [("text", "The **answer**.")]
    printed, regions = _grow(LiveAnswer(_console()), pieces)
    assert printed == ["First I think.", "", "Then I think some more, long enough to",
                       "wrap twice at forty columns.", "", "The answer."]
    assert all(len(region) <= 1 for region in regions[:-1]), \
        "only reasoning's last line is redrawn: plain text above it cannot change"


def test_hidden_reasoning_shows_nothing_of_it() -> None:
    printed, _ = _grow(LiveAnswer(_console(), show_reasoning=False),
                       [("reasoning", "secret"), ("text", "Shown.")])
    assert printed == ["Shown."]


def test_a_tool_call_is_one_line_and_long_arguments_are_cut() -> None:
    console = _console()
    short = tool_call_line({"name": "get_weather", "arguments": '{"city":"Paris"}'})
    assert short.plain == '→ get_weather({"city": "Paris"})'
    long = tool_call_line({"name": "search", "arguments": '{"q": "' + "x" * 100 + '"}'})
    lines = _text(console.render_lines(long, console.options, pad=False))
    assert len(lines) == 1 and lines[0].endswith("…")
    partial = tool_call_line({"name": "f", "arguments": '{"a": '})  # a stopped answer
    assert partial.plain == '→ f({"a": )'


@pytest.mark.parametrize(("pieces", "printed"), [
    (["a", " b"], "a b\n"),
    (["line\n"], "line\n"),
    (["end\n", "\n", "\n"], "end\n"),
    (["one\n\n", "two"], "one\n\ntwo\n"),
    (["\n\n"], ""),
    ([], ""),
])
def test_a_pipe_gets_the_text_and_exactly_one_newline_at_the_end(
        pieces: list[str], printed: str) -> None:
    out = io.StringIO()
    answer = PlainAnswer(out)
    for piece in pieces:
        answer.add_text(piece)
    answer.add_reasoning("never printed")
    answer.end()
    assert out.getvalue() == printed
