"""The generations running in this process, by stream id: who started each, in which
conversation, and the guards that depend on them (one regenerate at a time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from tokenrelay.errors import TokenrelayError
from tokenrelay.generation import Generation


@dataclass(frozen=True, slots=True)
class Running:
    generation: Generation
    task: asyncio.Task[None]
    conversation_id: str
    owner: str


class Generations:
    def __init__(self) -> None:
        self._running: dict[str, Running] = {}
        self._owners: Counter[str] = Counter()
        #: conversations whose regenerate is between its checks and its launch
        self._regenerating: set[str] = set()

    def add(self, stream_id: str, running: Running) -> None:
        """Until `ended(stream_id)` (the service calls it when the task is done)."""
        self._running[stream_id] = running
        self._owners[running.owner] += 1

    def ended(self, stream_id: str) -> None:
        running = self._running.pop(stream_id, None)
        if running is not None:
            self._owners[running.owner] -= 1
            if not self._owners[running.owner]:
                del self._owners[running.owner]

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._running

    def __bool__(self) -> bool:
        return bool(self._running)

    def all(self) -> list[Running]:
        return list(self._running.values())

    def of_owner(self, owner: str) -> int:
        """Counted as they start and end: every request with a key asks (issue 16: a
        walk over all that run was a cost per request that grew with the streams)."""
        return self._owners[owner]

    def in_conversation(self, conversation_id: str) -> list[Running]:
        return [running for running in self._running.values()
                if running.conversation_id == conversation_id]

    @contextlib.contextmanager
    def regenerating(self, conversation_id: str) -> Iterator[None]:
        """Hold `conversation_id` for one regenerate; a 409 while an answer streams in
        it or another regenerate holds it (two at once would both be "the" answer)."""
        busy = [stream_id for stream_id, running in self._running.items()
                if running.conversation_id == conversation_id]
        if busy or conversation_id in self._regenerating:
            raise TokenrelayError(
                f"An answer is still streaming in this conversation (stream "
                f"{busy[0] if busy else 'starting'}): cancel it first.",
                code="stream_in_progress", status=409)
        self._regenerating.add(conversation_id)
        try:
            yield
        finally:
            self._regenerating.discard(conversation_id)

    async def stop(self, runs: list[Running], reason: str, timeout: float) -> None:
        for running in runs:
            running.generation.cancel(reason)
        if runs:
            await asyncio.wait([running.task for running in runs], timeout=timeout)
