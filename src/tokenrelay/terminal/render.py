"""What the terminal chat shows, with Rich: the answer as live markdown, the stats line
under it, errors, and a resumed conversation's history."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from tokenrelay.client import APIError, ChatStream, StreamInterrupted, StreamMismatch
from tokenrelay.events import Delta, Done, Error

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


class LiveAnswer:
    """The answer as it streams, rendered as markdown at the Live's refresh rate. While
    streaming it shows the last screenful (the newest text is what the reader
    follows; Rich's own cropping would keep the top); `finish()` shows all of it, for
    the final render that stays on screen."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._full = False
        self._cache: tuple[int, int, list[list[Segment]]] | None = None
        self.note: str | None = None

    def add(self, text: str) -> None:
        self._parts.append(text)  # the refresh thread joins the parts when it renders

    def finish(self) -> None:
        self._full, self.note = True, None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = "".join(self._parts)
        if not text:
            if not self._full:
                yield Spinner("dots", Text(self.note or "waiting for the first token", "dim"))
            return
        lines = self._render(console, options, text)
        if not self._full:
            lines = lines[-max(options.max_height - 2, 1):]
        for line in lines:
            yield from line
            yield Segment.line()
        if self.note:
            yield Text(self.note, style="dim yellow")

    def _render(self, console: Console, options: ConsoleOptions,
                text: str) -> list[list[Segment]]:
        # A refresh with no new text (the spinner ticks, a slow model) reuses the render.
        if self._cache and self._cache[:2] == (len(text), options.max_width):
            return self._cache[2]
        lines = console.render_lines(Markdown(text), options.update(height=None), pad=False)
        self._cache = (len(text), options.max_width, lines)
        return lines


def _tokens(reply: Reply) -> int:
    end = reply.stream.end
    if isinstance(end, Done) and end.usage.get("output_tokens") is not None:
        return int(end.usage["output_tokens"])
    return sum(isinstance(event, Delta) for event in reply.stream.events)


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


def print_history(console: Console, conversation: Mapping[str, Any]) -> None:
    """A resumed conversation's messages as they would have appeared live."""
    console.print(Text(f"Continuing “{conversation.get('title') or conversation['id']}”",
                       style="dim"))
    for message in conversation["messages"]:
        if message["role"] == "assistant":
            console.print(Markdown(message["content"]))
            if message["status"] != "complete":
                console.print(Text(f"■ {message['status']}", style="dim yellow"))
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
