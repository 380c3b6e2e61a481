"""Conversation changes pushed to every open page of their owner (issue 14: a second
tab saw a live stream, but not the turns sent later from the first tab, nor the
sidebar's changes, until reloaded).

One feed per owner: numbered events (`conversation` with `{change, conversation_id,
title, updated, stream_id?}`) kept in a short ring, so that a page that reconnects
with `Last-Event-ID` gets what it missed. When it asks for more than the ring holds,
or for ids another process gave out (another worker), it gets one `reset` event: reload
the list. That keeps the feed in process memory, with nothing shared to go stale.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenrelay import sse

#: events kept per owner for pages that reconnect
RING = 200
_process_ids = itertools.count(1)


@dataclass
class _Owner:
    events: deque[tuple[int, bytes]] = field(default_factory=lambda: deque(maxlen=RING))
    waiters: set[asyncio.Future[None]] = field(default_factory=set)


class ConversationFeed:
    def __init__(self, heartbeat: float = 15.0):
        self._heartbeat = heartbeat
        self._owners: dict[str, _Owner] = {}
        #: ids are unique to this process: another process's id is not found here
        self._epoch = next(_process_ids) * 1_000_000_000

    def publish(self, owner: str, change: str, data: dict[str, Any]) -> None:
        feed = self._owners.get(owner)
        if feed is None:
            return  # nobody of this owner is listening, and nobody missed anything
        last = feed.events[-1][0] if feed.events else self._epoch
        seq = last + 1
        feed.events.append((seq, sse.encode_json(orjson.dumps({"change": change, **data}),
                                                 "conversation", seq)))
        for waiter in feed.waiters:
            if not waiter.done():
                waiter.set_result(None)
        feed.waiters.clear()

    async def read(self, owner: str, after: int | None) -> AsyncIterator[bytes]:
        """The owner's changes after `after` (None: from now), then each as it comes;
        a heartbeat comment when quiet."""
        feed = self._owners.setdefault(owner, _Owner())
        position = feed.events[-1][0] if feed.events else self._epoch
        if after is not None and after != position:
            first = feed.events[0][0] if feed.events else position + 1
            if first - 1 <= after <= position:
                position = after
            else:
                yield sse.encode_json(b'{"change":"reset"}', "reset", position)
        while True:
            if feed.events and position < feed.events[0][0] - 1:  # the ring moved past it
                position = feed.events[-1][0]
                yield sse.encode_json(b'{"change":"reset"}', "reset", position)
                continue
            pending = [event for seq, event in feed.events if seq > position]
            if pending:
                position = feed.events[-1][0]
                yield b"".join(pending)
                continue
            waiter = asyncio.get_running_loop().create_future()
            feed.waiters.add(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self._heartbeat)
            except TimeoutError:
                yield sse.PING
            finally:
                feed.waiters.discard(waiter)
