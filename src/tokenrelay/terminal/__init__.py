"""`tokenrelay chat`: a terminal chat built on the Python client.

With a prompt it answers once and exits; the raw deltas go to stdout when stdout is
not a terminal, so `tokenrelay chat "..." | less` gets exactly the model's text.
Without one it is an interactive chat that renders the answer as markdown while it
streams. Ctrl-C during an answer stops the generation on the server (DESIGN.md:
"a stop button really stops the model") and keeps the partial answer.

`session` is the command (one answer, or the chat loop), `interrupt` turns Ctrl-C into
a cancel on the server, `render` is everything Rich draws. The answer itself (its
text, model and end) is the client's `ChatStream`.
"""

from __future__ import annotations

from tokenrelay.terminal.session import (
    EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE, ChatConfig, run,
)

__all__ = ["ChatConfig", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE", "run"]
