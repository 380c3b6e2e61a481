"""A stream's summary in Redis: what the answer is so far, beside its events.

A hash (`keys.summary`) holds the `start` event's data and the text so far, so that the
process that ends an orphaned stream (orphans.py) reads a few fields instead of
decoding every event again. The producer writes it in the same pipeline as the
events, just before their `XADD`: a producer that dies between the two leaves a
summary one batch ahead of the events, never behind what a reader has seen.

Every write is idempotent, because a pipeline can be applied with its reply lost, and
redis-py sends a pipeline again after it reconnects. The hash's `covers` field is the
last event it includes; the script that extends it does nothing when `covers` already
includes the batch and refuses when `covers` falls short of the batch's start (Redis
restarted, or lost the key otherwise). Then the producer, which keeps the summary in
memory while it generates, writes it whole, as it does after any failed write.

Adding a field is one line in WHOLE (an event's data, as JSON, set) or ACCUMULATED (a
string from each such event's data, appended).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Final

import orjson
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from tokenrelay.events import DELTA, REASONING, START
from tokenrelay.streams import Orphan
from tokenrelay.streams.redis import keys

log = logging.getLogger("tokenrelay.streams.redis")

#: fields that hold an event's whole data, as JSON: event -> field
WHOLE: Final[dict[str, str]] = {START: "start"}
#: fields that join a string from each such event's data: event -> (field, data key)
ACCUMULATED: Final[dict[str, tuple[str, str]]] = {DELTA: ("text", "text"),
                                                   REASONING: ("reasoning", "text")}
#: the field naming the last event the summary includes
COVERS: Final = "covers"
#: the answer's text, whose length also rides in each entry (entries.py)
_TEXT: Final = "text"

# KEYS[1] the summary; ARGV: the event it will cover, the one it must cover already,
# how many field-value pairs follow to set, then those and the pairs to append.
_EXTEND: Final = """
local covers = tonumber(redis.call('HGET', KEYS[1], 'covers') or '0')
if covers >= tonumber(ARGV[1]) then return 1 end
if covers ~= tonumber(ARGV[2]) then return 0 end
local appended = 4 + 2 * tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local value = ARGV[i + 1]
  if i >= appended then value = (redis.call('HGET', KEYS[1], ARGV[i]) or '') .. value end
  redis.call('HSET', KEYS[1], ARGV[i], value)
end
redis.call('HSET', KEYS[1], 'covers', ARGV[1])
return 1
"""
_EXTEND_SHA: Final = hashlib.sha1(_EXTEND.encode()).hexdigest()


class Summary:
    """One stream's summary as its producer keeps it, and what Redis is known to have."""

    __slots__ = ("_whole", "_unsent", "_pieces", "_sent", "_sending", "upto", "covers",
                 "rewrite", "length")

    def __init__(self) -> None:
        self._whole: dict[str, bytes] = {}
        self._unsent: set[str] = set()  # whole fields set since Redis last took them
        self._pieces: dict[str, list[str]] = {field: [] for field, _ in ACCUMULATED.values()}
        self._sent = dict.fromkeys(self._pieces, 0)  # pieces Redis has, per field
        #: what the write in flight will make true if it succeeds
        self._sending: tuple[bool, int, dict[str, int], dict[str, bytes]] | None = None
        self.upto = 0  # the last event added
        self.covers = 0  # the last event Redis is known to include
        self.rewrite = True  # Redis's copy is unknown (none yet): write it whole
        self.length = 0  # the text's code points so far

    def add(self, seq: int, event: str, data: dict[str, Any]) -> None:
        self.upto = seq
        if (field := WHOLE.get(event)) is not None:
            self._whole[field] = orjson.dumps(data)
            self._unsent.add(field)
        elif (accumulated := ACCUMULATED.get(event)) is not None:
            field, key = accumulated
            piece: str = data[key]
            self._pieces[field].append(piece)
            if field == _TEXT:
                self.length += len(piece)

    @property
    def behind(self) -> bool:
        return self.rewrite or self.covers < self.upto

    def write(self, pipe: Pipeline, stream_id: str) -> int:
        """Queue what Redis lacks; returns the index of the command `settle` takes the
        result of. The caller expires the key as it does the events key."""
        key = keys.summary(stream_id)
        sent = {field: len(pieces) for field, pieces in self._pieces.items()}
        whole = {field: self._whole[field] for field in self._unsent}
        self._sending = (self.rewrite, self.upto, sent, whole)
        index = len(pipe)
        if self.rewrite:
            pipe.hset(key, mapping={**self._whole, **{
                field: "".join(pieces) for field, pieces in self._pieces.items()},
                COVERS: self.upto})
            return index
        appended = [(field, "".join(pieces[self._sent[field]:]))
                    for field, pieces in self._pieces.items() if len(pieces) > self._sent[field]]
        pipe.evalsha(_EXTEND_SHA, 1, key, self.upto, self.covers, len(whole),
                     *(part for pair in [*whole.items(), *appended] for part in pair))
        return index

    def settle(self, result: Any) -> None:
        """Take the result of the queued write (None when the pipeline failed)."""
        assert self._sending is not None
        rewrite, upto, sent, whole = self._sending
        self._sending = None
        if result is None or isinstance(result, Exception) or (not rewrite and result != 1):
            if isinstance(result, Exception) and not isinstance(result, NoScriptError):
                log.warning("summary write failed (%s); writing it whole", result)
            self.rewrite = True  # 0: Redis lacks the start of the batch; NOSCRIPT: restarted
            return
        self.covers, self._sent, self.rewrite = upto, sent, False
        for field, value in whole.items():
            if self._whole[field] is value:
                self._unsent.discard(field)


def load_script(pipe: Pipeline) -> None:
    """Queue the script (a no-op where Redis has it): before a batch with a whole write,
    which follows a restart that lost the script, or a stream's first write."""
    pipe.script_load(_EXTEND)


def read(stored: dict[bytes, bytes]) -> Orphan:
    """The orphan's part of a summary, from HGETALL (empty for an unknown stream)."""
    start = stored.get(WHOLE[START].encode())
    return Orphan(orjson.loads(start) if start is not None else {},
                  stored.get(_TEXT.encode(), b"").decode(),
                  stored.get(ACCUMULATED[REASONING][0].encode(), b"").decode())
