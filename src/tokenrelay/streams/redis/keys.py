"""Every Redis key and channel the stream log uses, and how long each lives.

A stream's keys share the hash tag `{<stream_id>}`, so on a Redis Cluster they sit in
one slot and one pipeline or script may touch them all.
"""

from __future__ import annotations

from typing import Final

#: pub/sub channel on which any process asks a stream's producer to stop (cancel.py)
CANCEL_CHANNEL: Final = "tokenrelay:cancel"
#: a live stream's keys expire this long after its first write, if never finished
LIVE_TTL: Final = 3600


def _key(stream_id: str, name: str) -> str:
    return f"tokenrelay:{{{stream_id}}}:{name}"


def events(stream_id: str) -> str:
    """The Redis stream of encoded events (entries.py)."""
    return _key(stream_id, "events")


def summary(stream_id: str) -> str:
    """The hash of what the answer is so far (summary.py)."""
    return _key(stream_id, "summary")


def lease(stream_id: str) -> str:
    """Held by the producing process while it lives (producer.py renews it)."""
    return _key(stream_id, "lease")


def owner(stream_id: str) -> str:
    """Who started the stream: only they may read or cancel it."""
    return _key(stream_id, "owner")


def lost(stream_id: str) -> str:
    """The SET NX claim of the process that ends an orphan (orphans.py)."""
    return _key(stream_id, "lost")


def cancel(stream_id: str) -> str:
    """A cancel request, for a producer whose pub/sub listener was reconnecting."""
    return _key(stream_id, "cancel")


def reading(stream_id: str) -> str:
    """Set while another process has readers of the stream (the abandon rule)."""
    return _key(stream_id, "reading")


def seconds(duration: float) -> int:
    """A duration as Redis's EX takes it: whole seconds, at least one."""
    return max(1, round(duration))
