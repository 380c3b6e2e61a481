"""The `chat` command: one answer (a prompt was given), or the interactive chat loop."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TextIO, cast

from rich.console import Console
from rich.text import Text

from tokenrelay.client import ChatStream, Client
from tokenrelay.events import Delta, Done, Error, Reasoning, Start, StreamEvent
from tokenrelay.terminal.interrupt import StopOnInterrupt, keys_unechoed, sigint_for_main_thread
from tokenrelay.terminal.render import (
    FAILURES, LiveAnswer, Reply, describe, print_history, print_outcome, readline_prompt,
    say_error,
)

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1  # the answer ended with an `error` event
EXIT_UNREACHABLE: Final = 2  # no server, or it refused the request
EXIT_INTERRUPTED: Final = 130  # the shell's convention for "ended by SIGINT"


@dataclass(frozen=True, slots=True)
class ChatConfig:
    url: str
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    show_reasoning: bool = True


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
        except FAILURES as exc:
            say_error(err, describe(exc, config.url))
            return EXIT_UNREACHABLE
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        try:
            return Session(client, config, Console()).run(history)
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


def _start(client: Client, config: ChatConfig, message: str,
           conversation_id: str | None) -> ChatStream:
    # A later turn sends only the new message: the server holds the history.
    return client.chat(message, model=config.model, conversation_id=conversation_id,
                       options=dict(config.options) or None)


class Sink(Protocol):
    """Where an answer's pieces go as they come: the live view, or a pipe."""

    def add_text(self, text: str) -> None: ...

    def add_reasoning(self, text: str) -> None: ...


def read(client: Client, stream: ChatStream, sink: Sink,
         on_stop: Callable[[], None] = lambda: None) -> Reply:
    """Read an answer to its end, passing its text and reasoning to `sink`; Ctrl-C
    cancels it on the server and reading goes on until the stream's `done`."""
    reply = Reply(stream)
    with StopOnInterrupt(client, on_stop) as stopper:
        events = cast(Generator[StreamEvent, None, None], iter(stream))
        try:
            for event in events:
                if isinstance(event, Delta | Reasoning) and reply.first_token is None:
                    reply.first_token = time.perf_counter()  # what the user waited for
                if isinstance(event, Delta):
                    sink.add_text(event.text)
                elif isinstance(event, Reasoning):
                    sink.add_reasoning(event.text)
                elif isinstance(event, Start):
                    stopper.watch(event.stream_id)
        except KeyboardInterrupt:
            reply.abandoned = True
        finally:
            events.close()  # closes the HTTP response when we stopped early
    reply.ended = time.perf_counter()
    return reply


# --- one-shot ------------------------------------------------------------------------


def _answer_once(client: Client, config: ChatConfig, prompt: str, err: Console) -> int:
    if sys.stdout.isatty():
        stream, reply = _answer_live(client, config, prompt, config.conversation_id,
                                     Console())
    else:
        stream = _start(client, config, prompt, config.conversation_id)
        try:
            reply = _read_plain(client, stream, sys.stdout)
        except BrokenPipeError:
            _reader_left(client, stream)
            return EXIT_OK
    if isinstance(stream.end, Error):
        say_error(err, f"Error ({stream.end.code}): {stream.end.message}")
        return EXIT_ERROR
    if reply.stopped:
        err.print(Text("Stopped.", style="yellow"))
        return EXIT_INTERRUPTED
    return EXIT_OK


class PlainAnswer:
    """The answer's text for a pipe, flushed as it comes, ending with exactly one
    newline (issue 14: without one the shell's prompt stuck to the answer): newlines
    at the end are held back until more text follows them.

    Reasoning goes nowhere: stdout is the answer alone, and stderr, shared with
    whatever reads the pipe (`| less` draws on the same terminal), only says what
    went wrong."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._held = ""
        self._wrote = False

    def add_text(self, text: str) -> None:
        body = text.rstrip("\n")
        if not body:
            self._held += text
            return
        self._write(self._held + body)
        self._held, self._wrote = text[len(body):], True

    def add_reasoning(self, text: str) -> None:
        pass

    def end(self) -> None:
        if self._wrote:
            self._write("\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _read_plain(client: Client, stream: ChatStream, out: TextIO) -> Reply:
    answer = PlainAnswer(out)
    reply = read(client, stream, answer)
    answer.end()
    return reply


def _reader_left(client: Client, stream: ChatStream) -> None:
    """stdout's reader went away (`| head`): stop the model too, and point stdout at
    nothing so that Python's flush at exit does not fail a second time."""
    if stream.stream_id is not None:
        with contextlib.suppress(*FAILURES):
            client.cancel(stream.stream_id)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _answer_live(client: Client, config: ChatConfig, message: str,
                 conversation_id: str | None, console: Console) -> tuple[ChatStream, Reply]:
    """Ask, and show the answer as it streams; keys are not echoed meanwhile."""
    with keys_unechoed():
        stream = _start(client, config, message, conversation_id)
        return stream, _read_live(client, stream, console, config.show_reasoning)


def _read_live(client: Client, stream: ChatStream, console: Console,
               show_reasoning: bool) -> Reply:
    view = LiveAnswer(console, show_reasoning)

    def stopping() -> None:
        view.note = "stopping…"

    with sigint_for_main_thread():
        view.start()  # its painter thread must not take the Ctrl-C meant for the reader
    try:
        return read(client, stream, view, stopping)
    finally:
        end = stream.end
        view.finish(end.tool_calls if isinstance(end, Done) else ())


# --- interactive -------------------------------------------------------------------------


class Session:
    """The interactive chat: one conversation, a prompt, answers rendered live."""

    def __init__(self, client: Client, config: ChatConfig, console: Console):
        self.client, self.config, self.console = client, config, console
        self.conversation_id = config.conversation_id

    def run(self, history: Mapping[str, Any] | None) -> int:
        if history is not None:
            print_history(self.console, history, self.config.show_reasoning)
        self.console.print(Text(
            f"tokenrelay chat · {self.config.url} · Ctrl-C stops an answer, Ctrl-D exits",
            style="dim"))
        prompt = readline_prompt(self.console)
        while True:
            try:
                # Ctrl-C here leaves. CPython's readline checks for a signal only when
                # its select() is interrupted, so one that lands between drawing the
                # prompt and that select() waits for the next key: no person is that
                # quick, a test driving the terminal can be (test_terminal.py waits).
                message = input(prompt)
            except (EOFError, KeyboardInterrupt):
                return self._leave()
            if message.strip():
                self._turn(message)

    def _turn(self, message: str) -> None:
        """One question and its answer; whatever goes wrong, the session goes on."""
        try:
            stream, reply = _answer_live(self.client, self.config, message,
                                         self.conversation_id, self.console)
        except FAILURES as exc:
            say_error(self.console, describe(exc, self.config.url))
            return
        except KeyboardInterrupt:  # between the answer's end and the prompt
            self.console.print(Text("stopped", style="dim yellow"))
            return
        self.conversation_id = stream.conversation_id or self.conversation_id
        print_outcome(self.console, reply)

    def _leave(self) -> int:
        self.console.print()
        if self.conversation_id:
            self.console.print(Text(
                f"Conversation {self.conversation_id} · continue it with "
                f"`tokenrelay chat --continue {self.conversation_id}`", style="dim"),
                soft_wrap=True)  # the command stays whole, to copy
        return EXIT_OK
