"""`tokenrelay chat`: a terminal chat built on the Python client.

With a prompt it answers once and exits; the raw deltas go to stdout when stdout is
not a terminal, so `tokenrelay chat "..." | less` gets exactly the model's text.
Without one it is an interactive chat that renders the answer as markdown while it
streams. Ctrl-C during an answer stops the generation on the server (DESIGN.md:
"a stop button really stops the model") and keeps the partial answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final, cast

import httpx
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from tokenrelay.client import APIError, ChatStream, Client, StreamInterrupted, StreamMismatch
from tokenrelay.events import Delta, Done, Error, Start, StreamEvent

__all__ = ["ChatConfig", "EXIT_ERROR", "EXIT_OK", "EXIT_UNREACHABLE", "parse_options", "run"]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1  # the answer ended with an `error` event
EXIT_UNREACHABLE: Final = 2  # no server, or it refused the request
EXIT_INTERRUPTED: Final = 130  # the shell's convention for "ended by SIGINT"

#: Markdown is re-parsed and re-rendered whole on each refresh, so refresh at a steady
#: rate a reader perceives as smooth, never once per token (that is quadratic in the
#: answer's length, and a fast model sends hundreds of tokens a second).
REFRESH_PER_SECOND: Final = 15
PROMPT_MARK: Final = "› "

_FAILURES = (APIError, StreamInterrupted, StreamMismatch, httpx.HTTPError, httpx.InvalidURL)


@dataclass(frozen=True, slots=True)
class ChatConfig:
    url: str
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """`-o key=value` pairs as provider options: the value as JSON when it parses
    (`-o delay_ms=50`, `-o fail_after=2`), else the string as written (`-o text=hi`).
    The server validates them against the provider's options model."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r} is not key=value: write it like -o delay_ms=50")
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return options


def run(config: ChatConfig, prompt: str | None) -> int:
    """The `chat` command; returns its exit code."""
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()  # `echo question | tokenrelay chat` answers once
    err = Console(stderr=True)
    with Client(config.url) as client:
        try:
            history = _probe(client, config)
            if prompt is not None:
                return _answer_once(client, config, prompt, err)
        except _FAILURES as exc:
            _say_error(err, _describe(exc, config.url))
            return EXIT_UNREACHABLE
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        try:
            return _Session(client, config, Console()).run(history)
        except KeyboardInterrupt:  # while the history prints: leaving is what was asked
            return EXIT_OK


def _probe(client: Client, config: ChatConfig) -> dict[str, Any] | None:
    """Ask something cheap first. The client retries a submit that gets no response
    for several seconds, to ride out a blip; a server that is not running at all
    should be one clear line at once. With --continue this reads the conversation."""
    if config.conversation_id:
        return client.conversation(config.conversation_id)
    client.conversations(limit=1)
    return None


def _say_error(console: Console, message: str) -> None:
    # soft_wrap: one line a script can grep, wrapped by the terminal, not by Rich at 80
    console.print(Text(message, style="red"), soft_wrap=True)


def _describe(exc: Exception, url: str) -> str:
    if isinstance(exc, APIError):
        return f"tokenrelay at {url} refused the request: {exc.message} ({exc.status} {exc.code})"
    if isinstance(exc, StreamInterrupted) and exc.stream_id:
        return (f"Lost the connection to {url} mid-answer; the answer goes on there as "
                f"stream {exc.stream_id}.")
    if isinstance(exc, StreamMismatch):
        return f"The answer arrived damaged ({exc}); please report this."
    return f"Cannot reach tokenrelay at {url}: start it with `tokenrelay serve` ({exc})"


def _start(client: Client, config: ChatConfig, message: str,
           conversation_id: str | None) -> ChatStream:
    # A later turn sends only the new message: the server holds the history.
    return client.chat(message, model=config.model, conversation_id=conversation_id,
                       options=dict(config.options) or None)


# --- reading one answer ------------------------------------------------------------


@dataclass(slots=True)
class _Answer:
    """One answer as this terminal saw it, with its own clock for the stats line."""

    sent: float = field(default_factory=time.perf_counter)
    parts: list[str] = field(default_factory=list)
    conversation_id: str | None = None
    model: str | None = None
    first_token: float | None = None
    ended: float | None = None
    end: Done | Error | None = None
    abandoned: bool = False  # a second Ctrl-C: we stopped reading before the end

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def stopped(self) -> bool:
        cancelled = isinstance(self.end, Done) and self.end.finish_reason == "cancelled"
        return cancelled or self.abandoned


class _StopOnInterrupt:
    """While an answer streams, Ctrl-C asks the server to stop it instead of raising
    KeyboardInterrupt wherever the main thread happens to be (inside httpx, or Rich):
    the stream then ends the regular way, with `done` (finish_reason "cancelled").

    The cancel is sent from a thread because the handler runs in the main thread
    between two bytecodes, perhaps while it holds httpx's pool lock, and the main
    thread may sit in a read for seconds (a model processing a long prompt). A second
    Ctrl-C stops waiting: the way out when the server no longer answers."""

    def __init__(self, client: Client, on_request: Callable[[], None] = lambda: None):
        self._client = client
        self._on_request = on_request
        self._stream_id: str | None = None
        self._previous: Any = None
        self.requested = False

    def __enter__(self) -> _StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def watch(self, stream_id: str) -> None:
        """The stream to cancel; a Ctrl-C that came before its `start` cancels it now."""
        self._stream_id = stream_id
        if self.requested:
            self._send_cancel(stream_id)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._on_request()
        if self._stream_id is not None:
            self._send_cancel(self._stream_id)

    def _send_cancel(self, stream_id: str) -> None:
        with _sigint_for_main_thread():
            threading.Thread(target=self._cancel, args=(stream_id,), daemon=True).start()

    def _cancel(self, stream_id: str) -> None:
        # A failed cancel leaves the stream running: the user sees it go on and can
        # press Ctrl-C again to stop waiting, so there is nothing more to do here.
        with contextlib.suppress(*_FAILURES):
            self._client.cancel(stream_id)


@contextlib.contextmanager
def _sigint_for_main_thread() -> Iterator[None]:
    """Threads started inside block SIGINT (a thread inherits its creator's mask), so
    the kernel delivers Ctrl-C to the main thread and interrupts its blocking read;
    delivered to another thread, Python would run the handler only when the next
    bytes arrive."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no per-thread masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _read(client: Client, stream: ChatStream, on_text: Callable[[str], None],
          on_stop: Callable[[], None] = lambda: None) -> _Answer:
    """Read an answer to its end, passing each delta to `on_text`; Ctrl-C cancels it
    on the server and reading goes on until the stream's `done`."""
    answer = _Answer()
    with _StopOnInterrupt(client, on_stop) as stopper:
        events = cast(Generator[StreamEvent, None, None], iter(stream))
        try:
            for event in events:
                _take(answer, event, stopper, on_text)
        except KeyboardInterrupt:
            answer.abandoned = True
        finally:
            events.close()  # closes the HTTP response when we stopped early
    answer.ended = time.perf_counter()
    return answer


def _take(answer: _Answer, event: StreamEvent, stopper: _StopOnInterrupt,
          on_text: Callable[[str], None]) -> None:
    if isinstance(event, Delta):
        if answer.first_token is None:
            answer.first_token = time.perf_counter()
        answer.parts.append(event.text)
        on_text(event.text)
    elif isinstance(event, Start):
        answer.conversation_id, answer.model = event.conversation_id, event.model
        stopper.watch(event.stream_id)
    else:
        answer.end = event


def _tokens(answer: _Answer) -> int:
    if isinstance(answer.end, Done) and answer.end.usage.get("output_tokens") is not None:
        return int(answer.end.usage["output_tokens"])
    return len(answer.parts)


def _tokens_per_s(answer: _Answer, tokens: int) -> float | None:
    """The server's rate when it reports one: it times the generation itself, where
    the client's clock also sees network reads that carry several deltas at once."""
    if isinstance(answer.end, Done) and answer.end.timings.get("tokens_per_s"):
        return float(answer.end.timings["tokens_per_s"])
    if answer.first_token is None or answer.ended is None or tokens < 2:
        return None
    span = answer.ended - answer.first_token
    return (tokens - 1) / span if span > 0 else None


def _stats_line(answer: _Answer) -> str:
    """e.g. `scripted · first token 0.21 s · 48.0 tokens/s · 120 tokens`. Time to first
    token is measured here: it is what the user waited, queueing and network included."""
    tokens = _tokens(answer)
    bits = [answer.model] if answer.model else []
    if answer.first_token is not None:
        bits.append(f"first token {answer.first_token - answer.sent:.2f} s")
    if (rate := _tokens_per_s(answer, tokens)) is not None:
        bits.append(f"{rate:.1f} tokens/s")
    bits.append(f"{tokens} token" + ("" if tokens == 1 else "s"))
    return " · ".join(bits)


# --- one-shot ------------------------------------------------------------------------


def _answer_once(client: Client, config: ChatConfig, prompt: str, err: Console) -> int:
    stream = _start(client, config, prompt, config.conversation_id)
    try:
        if sys.stdout.isatty():
            answer = _read_live(client, stream, Console())
        else:
            answer = _read_plain(client, stream)
    except BrokenPipeError:
        _reader_left(client, stream)
        return EXIT_OK
    if isinstance(answer.end, Error):
        _say_error(err, f"Error ({answer.end.code}): {answer.end.message}")
        return EXIT_ERROR
    if answer.stopped:
        err.print(Text("Stopped.", style="yellow"))
        return EXIT_INTERRUPTED
    return EXIT_OK


def _read_plain(client: Client, stream: ChatStream) -> _Answer:
    """The raw deltas, flushed as they come, so a pipe gets exactly the text."""

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return _read(client, stream, write)


def _reader_left(client: Client, stream: ChatStream) -> None:
    """stdout's reader went away (`| head`): stop the model too, and point stdout at
    nothing so that Python's flush at exit does not fail a second time."""
    if stream.stream_id is not None:
        with contextlib.suppress(*_FAILURES):
            client.cancel(stream.stream_id)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# --- rendering live --------------------------------------------------------------------


class _LiveAnswer:
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


def _read_live(client: Client, stream: ChatStream, console: Console) -> _Answer:
    view = _LiveAnswer()

    def stopping() -> None:
        view.note = "stopping…"

    live = Live(view, console=console, refresh_per_second=REFRESH_PER_SECOND)
    with _sigint_for_main_thread():
        live.start()  # its refresh thread must not take the Ctrl-C meant for the reader
    try:
        return _read(client, stream, view.add, stopping)
    finally:
        view.finish()
        live.stop()  # the last refresh draws the whole answer, and it stays


# --- interactive -------------------------------------------------------------------------


class _Session:
    """The interactive chat: one conversation, a prompt, answers rendered live."""

    def __init__(self, client: Client, config: ChatConfig, console: Console):
        self.client, self.config, self.console = client, config, console
        self.conversation_id = config.conversation_id

    def run(self, history: Mapping[str, Any] | None) -> int:
        if history is not None:
            _print_history(self.console, history)
        self.console.print(Text(
            f"tokenrelay chat · {self.config.url} · Ctrl-C stops an answer, Ctrl-D exits",
            style="dim"))
        prompt = _readline_prompt(self.console)
        while True:
            try:
                message = input(prompt)
            except (EOFError, KeyboardInterrupt):
                return self._leave()
            if message.strip():
                self._turn(message)

    def _turn(self, message: str) -> None:
        """One question and its answer; whatever goes wrong, the session goes on."""
        try:
            stream = _start(self.client, self.config, message, self.conversation_id)
            answer = _read_live(self.client, stream, self.console)
        except _FAILURES as exc:
            _say_error(self.console, _describe(exc, self.config.url))
            return
        except KeyboardInterrupt:  # between the answer's end and the prompt
            self.console.print(Text("stopped", style="dim yellow"))
            return
        self.conversation_id = answer.conversation_id or self.conversation_id
        _print_outcome(self.console, answer)

    def _leave(self) -> int:
        self.console.print()
        if self.conversation_id:
            self.console.print(Text(
                f"Conversation {self.conversation_id} · continue it with "
                f"`tokenrelay chat --continue {self.conversation_id}`", style="dim"),
                soft_wrap=True)  # the command stays whole, to copy
        return EXIT_OK


def _print_outcome(console: Console, answer: _Answer) -> None:
    if isinstance(answer.end, Error):
        _say_error(console, f"Error ({answer.end.code}): {answer.end.message}")
        return
    if answer.abandoned:
        console.print(Text("■ stopped (the server did not confirm)", style="yellow"))
        return
    note = ""
    if answer.stopped:
        note = "■ stopped · "
    elif isinstance(answer.end, Done) and answer.end.finish_reason == "length":
        note = "cut at the token limit · "
    console.print(Text(note + _stats_line(answer), style="dim"))


def _print_history(console: Console, conversation: Mapping[str, Any]) -> None:
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


def _readline_prompt(console: Console) -> str:
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
