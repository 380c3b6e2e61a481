"""What the terminal chat shows, with Rich: the answer as it streams (reasoning dimmed,
the text as markdown, tool calls), the stats line under it, errors, and a resumed
conversation's history."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from tokenrelay.client import APIError, ChatStream, StreamInterrupted, StreamMismatch
from tokenrelay.events import Delta, Done, Error, Reasoning

#: Markdown is re-parsed and re-rendered whole on each refresh, so refresh at a steady
#: rate a reader perceives as smooth, never once per token (that is quadratic in the
#: answer's length, and a fast model sends hundreds of tokens a second).
REFRESH_PER_SECOND: Final = 15
PROMPT_MARK: Final = "› "

#: what can go wrong talking to the server; each is one line for the user (`describe`)
FAILURES = (APIError, StreamInterrupted, StreamMismatch, httpx.HTTPError, httpx.InvalidURL)


@dataclass(slots=True)
class Reply:
    """An answer as this terminal read it: the client's stream holds the text, the
    model and the end; this adds the terminal's own clock for the stats line (time to
    first token is what the user waited, queueing and network included)."""

    stream: ChatStream
    sent: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    ended: float | None = None
    abandoned: bool = False  # a second Ctrl-C: we stopped reading before the end

    @property
    def stopped(self) -> bool:
        end = self.stream.end
        return self.abandoned or (isinstance(end, Done) and end.finish_reason == "cancelled")


Line = list[Segment]


class _Lines:
    """Rendered lines, printed as they are."""

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


class _Run:
    """A run of answer text (markdown) or of reasoning (dim) as it grows. `settle`
    splits what it shows into lines to print for good, above the live region, and the
    lines still redrawn in it; a line printed for good is never printed again, so what
    scrolls off the screen reaches the scrollback once (issue 14)."""

    def __init__(self, reasoning: bool) -> None:
        self.reasoning = reasoning
        self.parts: list[str] = []  # the reader's thread appends, the painter joins
        self.gap: bool | None = None  # a blank line first: set by the first settle
        self._start = 0  # the text before this is printed for good
        self._anchor = ""  # markdown: the last block printed for good (see _lines)
        self._anchor_lines = 0
        self._printed = 0  # lines of the text after _start already printed for good

    def settle(self, console: Console, options: ConsoleOptions,
               room: int | None) -> tuple[list[Line], list[Line]]:
        """(lines to print for good, the lines to redraw: at most `room`); with
        `room` None the run has ended and every line is for good."""
        text = "".join(self.parts).rstrip()  # a blank end may be followed by nothing
        if self._start == 0:
            self._start = len(text) - len(text.lstrip())
        rest = text[self._start:]
        done: list[Line] = []
        final = len(rest) if room is None else self._final_part(rest)
        if final:
            done = self._lines(console, options, rest[:final])[self._printed:]
            self._moved_past(console, options, rest[:final])
            rest = rest[final:]
        live = self._lines(console, options, rest)[self._printed:] if rest else []
        # A tall last block: its top is printed for good as it leaves the region.
        # Plain text wraps greedily, so only the last line of reasoning may change.
        keep = 0 if room is None else 1 if self.reasoning else room
        if len(live) > keep:
            done += live[:len(live) - keep]
            self._printed += len(live) - keep
            live = live[len(live) - keep:]
        return done, live

    def _final_part(self, rest: str) -> int:
        """How much of `rest` nothing that follows can change: the paragraphs before
        the last one, or the markdown blocks before the last one (a block is closed
        once the next one began)."""
        if self.reasoning:
            return rest.rfind("\n") + 1
        starts = _block_starts(rest)
        return starts[-1] if len(starts) > 1 else 0

    def _moved_past(self, console: Console, options: ConsoleOptions, final: str) -> None:
        self._start += len(final)
        self._printed = 0
        self.gap = False
        if not self.reasoning and (starts := _block_starts(final)):
            self._anchor = final[starts[-1]:]
            self._anchor_lines = len(_render(console, options, Markdown(self._anchor)))

    def _lines(self, console: Console, options: ConsoleOptions, text: str) -> list[Line]:
        if self.reasoning:
            lines = [line for paragraph in text.removesuffix("\n").split("\n")
                     for line in _render(console, options, Text(paragraph, "dim italic"))
                     or [[]]]
        else:
            # Rendered after the last block printed for good, then that block's lines
            # cut off: the space between two blocks is Markdown's, and depends on both.
            rendered = _render(console, options, Markdown(self._anchor + text))
            lines = rendered[self._anchor_lines:]
        return [[], *lines] if self.gap else lines


def _render(console: Console, options: ConsoleOptions, renderable: Any) -> list[Line]:
    return console.render_lines(renderable, options.update(height=None), pad=False)


def _block_starts(text: str) -> list[int]:
    """Where each top-level markdown block of `text` begins, as Rich's parser sees it."""
    line_starts = [0, *(match.end() for match in re.finditer("\n", text))]
    return [line_starts[token.map[0]] for token in Markdown(text).parsed
            if token.level == 0 and token.nesting >= 0 and token.map]


class _Region:
    """What the Live redraws: the answer's last lines, or a spinner before anything
    shows, and the note under them."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        # one Spinner for the whole wait: a new one each frame would never turn
        self.waiting: Spinner | None = Spinner(
            "dots", Text("waiting for the first token", style="dim"))
        self.note: str | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.waiting is not None:
            if self.note:
                self.waiting.update(text=Text(self.note, style="dim"))
            yield self.waiting
            return
        yield _Lines(self.lines)
        if self.note:
            yield Text(self.note, style="dim yellow")


class LiveAnswer:
    """The answer as it streams: reasoning dimmed, the text as markdown, then a line
    per tool call. Only its last lines are redrawn (a Rich Live); the lines above are
    printed for good once nothing can change them, so a tall answer scrolls as text in
    a terminal does and the scrollback holds each line once (issue 14).

    The reader's thread only appends text (`add_text`, `add_reasoning`); one painter
    thread renders and writes, at REFRESH_PER_SECOND, and `finish` writes the end
    after the painter stopped. One writer at a time: a print from another thread
    between Rich's cursor moves would leave a stale line."""

    def __init__(self, console: Console, show_reasoning: bool = True) -> None:
        self._console = console
        self._show_reasoning = show_reasoning
        self._runs: list[_Run] = []
        self._closed = 0  # runs before this one are printed whole
        self._shown = False  # a line of the answer is on the screen
        self._region = _Region()
        self._live = Live(self._region, console=console, auto_refresh=False)
        self._stop = threading.Event()
        self._painter = threading.Thread(target=self._paint, name="tokenrelay-paint",
                                         daemon=True)

    @property
    def note(self) -> str | None:
        return self._region.note

    @note.setter
    def note(self, note: str | None) -> None:
        self._region.note = note  # set from a signal handler: no lock may be taken

    def add_text(self, text: str) -> None:
        self._add(text, reasoning=False)

    def add_reasoning(self, text: str) -> None:
        if self._show_reasoning:
            self._add(text, reasoning=True)
        elif self._region.waiting is not None and not self._region.note:
            self._region.waiting.update(text=Text("thinking", style="dim"))

    def _add(self, text: str, reasoning: bool) -> None:
        if self._runs and self._runs[-1].reasoning == reasoning:
            self._runs[-1].parts.append(text)
            return
        run = _Run(reasoning)
        run.parts.append(text)
        self._runs.append(run)  # whole: the painter never sees a run half made

    def start(self) -> None:
        self._live.start()
        self._painter.start()

    def finish(self, tool_calls: Sequence[Mapping[str, Any]] = ()) -> None:
        """Print the rest of the answer and its tool calls for good, and end the Live
        with nothing left in it."""
        self._stop.set()
        if self._painter.is_alive():
            self._painter.join()
        done, _ = self._settle(final=True)
        calls = [line for call in tool_calls
                 for line in _render(self._console, self._console.options,
                                     tool_call_line(call))]
        if calls and self._shown:
            done.append([])
        self._region.lines, self._region.waiting, self._region.note = [], None, None
        if done or calls:
            self._console.print(_Lines(done + calls))  # erases the region above it
        self._live.stop()

    def _paint(self) -> None:
        while True:
            done, live = self._settle(final=False)
            if self._shown:
                self._region.waiting = None
            self._region.lines = live  # before the print, which redraws the region
            if done:
                self._console.print(_Lines(done))
            else:
                self._live.refresh()
            if self._stop.wait(1 / REFRESH_PER_SECOND):
                return

    def _settle(self, final: bool) -> tuple[list[Line], list[Line]]:
        # The region gets the screen less a line for the note and one to spare: its
        # top must never scroll off, or that line would reach the scrollback as it
        # was drawn then and the next redraw would start a line too low.
        room = max(self._console.size.height - 2, 1)
        runs = list(self._runs)
        done: list[Line] = []
        live: list[Line] = []
        for position in range(self._closed, len(runs)):
            run = runs[position]
            last = position == len(runs) - 1 and not final
            if run.gap is None:
                run.gap = self._shown
            run_done, live = run.settle(self._console, self._console.options,
                                        room if last else None)
            done += run_done
            self._shown = self._shown or bool(run_done or live)
            if not last:
                self._closed = position + 1
        return done, live


def tool_call_line(call: Mapping[str, Any]) -> Text:
    """`→ get_weather({"city": "Paris"})`, cut to one line."""
    arguments = str(call.get("arguments") or "")
    with contextlib.suppress(ValueError):
        arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
    return Text.assemble(("→ ", "cyan"), (str(call.get("name") or "?"), "bold"),
                         f"({arguments})", no_wrap=True, overflow="ellipsis")


def _tokens(reply: Reply) -> int:
    end = reply.stream.end
    if isinstance(end, Done) and end.usage.get("output_tokens") is not None:
        return int(end.usage["output_tokens"])
    return sum(isinstance(event, Delta | Reasoning) for event in reply.stream.events)


def _tokens_per_s(reply: Reply, tokens: int) -> float | None:
    """The server's rate when it reports one: it times the generation itself, where
    the client's clock also sees network reads that carry several deltas at once."""
    end = reply.stream.end
    if isinstance(end, Done) and end.timings.get("tokens_per_s"):
        return float(end.timings["tokens_per_s"])
    if reply.first_token is None or reply.ended is None or tokens < 2:
        return None
    span = reply.ended - reply.first_token
    return (tokens - 1) / span if span > 0 else None


def stats_line(reply: Reply) -> str:
    """e.g. `scripted · first token 0.21 s · 48.0 tokens/s · 120 tokens`."""
    tokens = _tokens(reply)
    bits = [reply.stream.model] if reply.stream.model else []
    if reply.first_token is not None:
        bits.append(f"first token {reply.first_token - reply.sent:.2f} s")
    if (rate := _tokens_per_s(reply, tokens)) is not None:
        bits.append(f"{rate:.1f} tokens/s")
    bits.append(f"{tokens} token" + ("" if tokens == 1 else "s"))
    return " · ".join(bits)


def print_outcome(console: Console, reply: Reply) -> None:
    """The line under an answer: its error, how it stopped, and its stats."""
    end = reply.stream.end
    if isinstance(end, Error):
        say_error(console, f"Error ({end.code}): {end.message}")
        return
    if reply.abandoned:
        console.print(Text("■ stopped (the server did not confirm)", style="yellow"))
        return
    note = ""
    if reply.stopped:
        note = "■ stopped · "
    elif isinstance(end, Done) and end.finish_reason == "length":
        note = "cut at the token limit · "
    console.print(Text(note + stats_line(reply), style="dim"))


def print_history(console: Console, conversation: Mapping[str, Any],
                  show_reasoning: bool = True) -> None:
    """A resumed conversation's messages as they would have appeared live."""
    console.print(Text(f"Continuing “{conversation.get('title') or conversation['id']}”",
                       style="dim"))
    for message in conversation["messages"]:
        if message["role"] == "assistant":
            if show_reasoning and message.get("reasoning"):
                console.print(Text(message["reasoning"].strip(), style="dim italic"))
            console.print(Markdown(message["content"]))
            for call in message.get("tool_calls") or ():
                console.print(tool_call_line(call))
            if message["status"] != "complete":
                console.print(Text(f"■ {message['status']}", style="dim yellow"))
        elif message["role"] == "tool":
            console.print(Text(f"← {message['content']}", style="dim",
                               no_wrap=True, overflow="ellipsis"))
        else:
            console.print(Text(PROMPT_MARK, style="bold cyan") + Text(message["content"]))


def say_error(console: Console, message: str) -> None:
    # soft_wrap: one line a script can grep, wrapped by the terminal, not by Rich at 80
    console.print(Text(message, style="red"), soft_wrap=True)


def describe(exc: Exception, url: str) -> str:
    """One of FAILURES as what the user reads, with what to do about it."""
    if isinstance(exc, APIError):
        return f"tokenrelay at {url} refused the request: {exc.message} ({exc.status} {exc.code})"
    if isinstance(exc, StreamInterrupted) and exc.stream_id:
        return (f"Lost the connection to {url} mid-answer; the answer goes on there as "
                f"stream {exc.stream_id}.")
    if isinstance(exc, StreamMismatch):
        return f"The answer arrived damaged ({exc}); please report this."
    return f"Cannot reach tokenrelay at {url}: start it with `tokenrelay serve` ({exc})"


def readline_prompt(console: Console) -> str:
    """The prompt for input(), with line editing and history when readline exists.
    readline must be told which bytes do not move the cursor (\\001...\\002), or it
    miscounts the prompt's width when it redraws the line."""
    try:
        import readline  # noqa: F401 - importing it gives input() line editing
    except ImportError:
        return PROMPT_MARK
    if not console.is_terminal or console.no_color or console.color_system is None:
        return PROMPT_MARK
    return f"\001\033[1;36m\002{PROMPT_MARK}\001\033[0m\002"
