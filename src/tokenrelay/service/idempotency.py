"""Idempotency-Key: a repeated request returns the stream the first one started,
instead of starting a second answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tokenrelay.errors import TokenrelayError
from tokenrelay.store import Store
from tokenrelay.streams import StreamLog, StreamNotFound

#: how long a repeated key waits for the first request's stream to appear
CLAIM_WAIT = 2.0


class IdempotencyKeys:
    def __init__(self, store: Store, streams: StreamLog):
        self._store = store
        self._streams = streams

    async def existing(self, owner: str, key: str, stream_id: str) -> str | None:
        """Claim `key` for `stream_id`; if the owner used it before, the stream it
        started (once that stream exists), and nothing is claimed."""
        existing = await self._store.claim_idempotency_key(owner=owner, key=key,
                                                           stream_id=stream_id)
        if existing is not None:
            await self._await_stream(existing, key)
        return existing

    @asynccontextmanager
    async def released_on_failure(self, owner: str, key: str | None,
                                  stream_id: str) -> AsyncIterator[None]:
        """A request that fails before its answer starts gives its key back, so that a
        retry can start it."""
        try:
            yield
        except BaseException:
            if key is not None:
                await self._store.release_idempotency_key(owner=owner, key=key,
                                                          stream_id=stream_id)
            raise

    async def _await_stream(self, stream_id: str, key: str) -> None:
        """The first request may still be between its claim and its stream's creation.
        Wait briefly for it; an expired stream is a 409."""
        deadline = asyncio.get_running_loop().time() + CLAIM_WAIT
        while True:
            try:
                await self._streams.info(stream_id)
                return
            except StreamNotFound:
                if asyncio.get_running_loop().time() >= deadline:
                    raise TokenrelayError(
                        f"Idempotency-Key {key!r} was used for stream {stream_id}, which is "
                        "no longer available: its answer is in the conversation. Use a new "
                        "key for a new answer.", code="idempotency_key_used", status=409,
                    ) from None
                await asyncio.sleep(0.02)
