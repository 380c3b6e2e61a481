"""The keyboard while an answer streams: Ctrl-C stops the generation on the server, not
the program, and other keys are not echoed into the answer.

While an answer streams, Ctrl-C asks the server to stop it instead of raising
KeyboardInterrupt wherever the main thread happens to be (inside httpx, or Rich): the
stream then ends the regular way, with `done` (finish_reason "cancelled"), and the
partial answer is kept (DESIGN.md: "a stop button really stops the model"). A second
Ctrl-C stops waiting: the way out when the server no longer answers.

The terminal echoes keys where its cursor is, in the middle of the answer Rich redraws
(issue 14): "^C", or text typed ahead, glued to the spinner's line, and once such an
echo wraps, Rich's next redraw starts a line too low and leaves a stale copy above.
So keys are not echoed while an answer streams; what was typed stays in the
terminal's buffer, and the next prompt's readline shows it there.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import httpx

from tokenrelay.client import APIError, Client


class StopOnInterrupt:
    """SIGINT, while inside, cancels the watched stream (or the next one watched).

    The cancel is sent from a thread because the handler runs in the main thread
    between two bytecodes, perhaps while it holds httpx's pool lock, and the main
    thread may sit in a read for seconds (a model processing a long prompt)."""

    def __init__(self, client: Client, on_request: Callable[[], None] = lambda: None):
        self._client = client
        self._on_request = on_request
        self._stream_id: str | None = None
        self._previous: Any = None
        self.requested = False

    def __enter__(self) -> StopOnInterrupt:
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
        with sigint_for_main_thread():
            threading.Thread(target=self._cancel, args=(stream_id,), daemon=True).start()

    def _cancel(self, stream_id: str) -> None:
        # A failed cancel leaves the stream running: the user sees it go on and can
        # press Ctrl-C again to stop waiting, so there is nothing more to do here.
        with contextlib.suppress(APIError, httpx.HTTPError):
            self._client.cancel(stream_id)


@contextlib.contextmanager
def sigint_for_main_thread() -> Iterator[None]:
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


@contextlib.contextmanager
def keys_unechoed() -> Iterator[None]:
    """The terminal on stdin does not echo keys inside (nothing changes when stdin is
    not a terminal, or on Windows)."""
    try:
        import termios
    except ImportError:  # Windows
        yield
        return
    try:
        fd = sys.stdin.fileno()
        before = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):  # not a terminal, or stdin closed
        yield
        return
    quiet = list(before)
    quiet[3] &= ~termios.ECHO  # lflag; ECHOCTL's "^C" needs ECHO, so it goes too
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, before)
