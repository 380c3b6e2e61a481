"""The one owner of the service's background work (STYLE.md "One owner for background
work"): every task the service starts is kept in one set until it ends, since asyncio
holds only a weak reference to a running task and may collect one nobody keeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("tokenrelay.service")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()
        #: the service's own loops (reaper, batch writer): cancelled at once on close
        self._loops: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], name: str, *,
              loop: bool = False) -> asyncio.Task[Any]:
        """Run `work` as a kept task; a `loop` runs until cancelled and is not waited
        for on close."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.keep(task)
        if loop:
            self._loops.add(task)
            task.add_done_callback(self._loops.discard)
        return task

    def keep(self, future: asyncio.Future[Any]) -> None:
        """Hold `future` until it is done (a write that outlives its stream, say)."""
        self._tasks.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("background task failed", exc_info=future.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self, timeout: float) -> None:
        """Cancel the loops; let the rest finish for up to `timeout` seconds, then
        cancel what is still running."""
        for task in list(self._loops):
            task.cancel()
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1)
