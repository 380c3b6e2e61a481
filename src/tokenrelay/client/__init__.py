"""The Python client: `for event in client.chat(...)`, resuming by itself.

    from tokenrelay import Client

    with Client("http://127.0.0.1:8000") as client:
        stream = client.chat("Write a haiku about streams")
        for event in stream:
            ...
        print(stream.text())  # the same answer again: nothing more is sent

When the connection drops mid-answer, the client reconnects to
`GET /api/streams/{id}` with `Last-Event-ID` (bounded retries with backoff) and the
caller sees one unbroken stream; the text is checked against `done.length`. A submit
that fails before the answer starts is retried with the same `Idempotency-Key`, so it
never starts two answers. A stream keeps what it read: iterated again, or asked for
`.text()` after a loop, it replays that and sends nothing.

HTTPX's shape: `_reading` holds every decision about reading one answer, with no I/O
(what to send next, whether to send it again, the backoff, resuming, the length
check); `_base` builds every request and holds what both clients and both streams
share; `_sync` and `_async` are only the I/O loops, twins of each other. Like the rest
of the client side, none of it imports the server's stack.
"""

from __future__ import annotations

from tokenrelay.client._async import AsyncChatStream, AsyncClient
from tokenrelay.client._errors import APIError, StreamFailed, StreamInterrupted, StreamMismatch
from tokenrelay.client._sync import ChatStream, Client

__all__ = [
    "APIError",
    "AsyncChatStream",
    "AsyncClient",
    "ChatStream",
    "Client",
    "StreamFailed",
    "StreamInterrupted",
    "StreamMismatch",
]
