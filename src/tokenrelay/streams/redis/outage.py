"""When Redis was last away, and the doubt it leaves about producers."""

from __future__ import annotations

import time


class Outage:
    """A Redis restart loses the lease keys, and producers renew them only every
    `lease / 3` seconds: after any failure to reach Redis, judge no producer lost for
    a lease and a half (orphans.py)."""

    def __init__(self, lease: float) -> None:
        self._grace = lease * 1.5
        self._until = 0.0

    def noticed(self) -> None:
        self._until = time.monotonic() + self._grace

    @property
    def recent(self) -> bool:
        return time.monotonic() < self._until
