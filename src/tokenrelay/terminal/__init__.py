"""`tokenrelay chat`: a terminal chat built on the Python client.

With a prompt it answers once and exits; when stdout is not a terminal it gets the
answer's text alone, as it streams, ending with one newline, so `tokenrelay chat "..."
| less` gets exactly the model's text. Without one it is an interactive chat that
shows the answer while it streams: reasoning dimmed, the text as markdown, a line per
tool call. Ctrl-C during an answer stops the generation on the server (DESIGN.md:
"a stop button really stops the model") and keeps the partial answer.

`session` is the command (one answer, or the chat loop), `interrupt` is the keyboard
during an answer (Ctrl-C becomes a cancel on the server, other keys are not echoed),
`render` is everything Rich draws. The answer itself (its
text, model and end) is the client's `ChatStream`.
"""

from __future__ import annotations

from tokenrelay.terminal.session import (
    EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE, ChatConfig, run,
)

__all__ = ["ChatConfig", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE", "run"]
