"""A stream's entries in Redis: one entry per batch of events.

The producer sends each batch as one `XADD` (a burst of tokens costs one command, not
one per event) whose id is the batch's last sequence number, `0-<seq>`. Its fields:
`e` the encoded events back to back, `n` their sizes (to split them again), `f` the
first one's sequence number, `t` 1 when the batch ends the stream, and `l` the length
of the answer's text (code points) up to the batch's last event, for an `error` event
that a mirror writes itself (mirror.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from tokenrelay.streams import StreamInfo, StreamNotFound
from tokenrelay.streams.redis import keys

Fields = dict[str, bytes | int]


def fields(events: list[bytes], first: int, *, terminal: bool, length: int) -> Fields:
    return {"e": b"".join(events), "f": first, "n": b",".join(b"%d" % len(e) for e in events),
            "t": b"1" if terminal else b"0", "l": length}


def seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[1])


def is_terminal(stored: dict[bytes, bytes]) -> bool:
    return stored[b"t"] == b"1"


@dataclass(frozen=True, slots=True)
class Entry:
    first: int
    events: list[bytes]
    terminal: bool
    #: None from a producer older than the `l` field
    length: int | None

    @property
    def last(self) -> int:
        return self.first + len(self.events) - 1


def parse(entry_id: bytes, stored: dict[bytes, bytes]) -> Entry:
    data, sizes = stored[b"e"], stored.get(b"n")
    events: list[bytes] = []
    if sizes is None:
        events.append(data)
    else:
        offset = 0
        for size in map(int, sizes.split(b",")):
            events.append(data[offset:offset + size])
            offset += size
    length = stored.get(b"l")
    return Entry(int(stored.get(b"f", seq(entry_id))), events, is_terminal(stored),
                 int(length) if length is not None else None)


async def stored_info(redis: aioredis.Redis, stream_id: str) -> StreamInfo:
    """What Redis knows of a stream this process does not generate: its last entry and
    its owner; no readers (those are counted where they are). Raises StreamNotFound."""
    async with redis.pipeline(transaction=False) as pipe:
        last, owner = await (pipe.xrevrange(keys.events(stream_id), count=1)
                             .get(keys.owner(stream_id)).execute())
    if not last:
        raise StreamNotFound(stream_id)
    entry_id, stored = last[0]
    return StreamInfo(seq(entry_id), is_terminal(stored), 0, None,
                      owner.decode() if owner is not None else None)
