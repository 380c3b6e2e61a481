"""Answers left `streaming` by a process that is gone (a crash, a kill -9, a lost
worker or host) are marked `interrupted`, with the text they had."""

from __future__ import annotations

import asyncio
import logging

from tokenrelay.service.generations import Generations
from tokenrelay.store import Store, StoredMessage
from tokenrelay.streams import StreamLog

log = logging.getLogger("tokenrelay.service")

PRODUCER_LOST = ("The process generating this answer stopped (crash, kill or lost host); "
                 "the text streamed until then is kept.")


class Reaper:
    def __init__(self, store: Store, streams: StreamLog, generations: Generations):
        self._store = store
        self._streams = streams
        self._generations = generations

    async def reap(self) -> int:
        """Mark the orphaned answers as `interrupted`; returns how many."""
        reaped = 0
        for message in await self._store.streaming_messages():
            if message.stream_id in self._generations:
                continue
            if await self._reap_one(message):
                reaped += 1
        if reaped:
            log.warning("marked %d answer(s) left streaming by a lost process as interrupted",
                        reaped)
        return reaped

    async def _reap_one(self, message: StoredMessage) -> bool:
        stream_id = message.stream_id
        orphan = None
        if stream_id:
            if await self._streams.producer_alive(stream_id):
                return False
            orphan = await self._streams.end_orphan(stream_id, "producer_lost", PRODUCER_LOST)
            if orphan is None and await self._streams.has_ended(stream_id):
                return False  # it ended normally while we looked; its own write follows
        # The stream log may hold more than the last batched write to the store.
        text = max(orphan.text if orphan else "", message.content, key=len)
        reasoning = max(orphan.reasoning if orphan else "", message.reasoning, key=len)
        await self._store.update_message(
            message.id, if_status="streaming", status="interrupted", content=text,
            reasoning=reasoning, error_code="producer_lost", error_message=PRODUCER_LOST)
        return True

    async def reap_every(self, interval: float) -> None:
        """With a shared log, a worker or host can die while others live: look for its
        orphaned answers every `interval` (the lease period)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:
                log.exception("reaping orphaned streams failed; retrying")
