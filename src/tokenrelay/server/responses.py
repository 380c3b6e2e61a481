"""The event-stream response: moves the stream log's bytes to the socket, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

#: DESIGN.md "Contract": never cached, never buffered by a proxy. (Never compressed:
#: the app adds no compression, and a compressing proxy would hold tokens back.)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(Response):
    """Writes `prelude`, then each chunk of `chunks` as it comes.

    The client going away cancels the writing (and only that: the generation goes on).
    One ASGI `send` per chunk; the log already joins pending events into one chunk.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        prelude: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ):
        self.chunks = chunks
        self.prelude = prelude
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, writer))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            more = {"type": "http.response.body", "body": self.prelude, "more_body": True}
            await send(more)
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # not a disconnect: the server is stopping
            writer.uncancel()
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await self.chunks.aclose()  # type: ignore[attr-defined]


async def _cancel_on_disconnect(receive: Receive, writer: asyncio.Task[None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            writer.cancel()
            return
