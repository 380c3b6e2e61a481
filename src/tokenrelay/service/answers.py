"""Answers' texts stored while they stream: every FLUSH_INTERVAL, the texts of all
streaming answers that grew, in one batch (issue 7: a thousand streaming answers cost
one write, not a thousand; never a write per token). A crash loses at most that much
of any answer. The final write of each answer is the generation's own, at its end."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from tokenrelay.service.background import Background
from tokenrelay.store import Store

log = logging.getLogger("tokenrelay.service")


class Answer(Protocol):
    """What is stored of a streaming answer (a Generation)."""

    @property
    def message_id(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def reasoning_length(self) -> int: ...
    @property
    def reasoning(self) -> str: ...

#: the texts of streaming answers are stored this often
FLUSH_INTERVAL = 0.5


class AnswerTexts:
    def __init__(self, store: Store, background: Background,
                 interval: float = FLUSH_INTERVAL):
        self._store = store
        self._background = background
        self._interval = interval
        #: the answers to store, with the length of the text last stored of each
        self._stored: dict[Answer, int] = {}
        self._writer: asyncio.Task[None] | None = None

    def track(self, generation: Answer) -> None:
        """Store `generation`'s text as it grows, until `untrack` (its run has ended,
        and written its end itself)."""
        self._stored[generation] = 0
        if self._writer is None or self._writer.done():
            self._writer = self._background.spawn(self._write_while_streaming(),
                                                  "answer texts", loop=True)

    def untrack(self, generation: Answer) -> None:
        self._stored.pop(generation, None)

    def _grown(self) -> tuple[dict[str, str], dict[str, str]]:
        """The texts and reasonings of the answers that grew since they were stored."""
        texts, reasonings = {}, {}
        for generation, stored in self._stored.items():
            size = generation.length + generation.reasoning_length
            if size != stored:
                self._stored[generation] = size
                texts[generation.message_id] = generation.text
                reasonings[generation.message_id] = generation.reasoning
        return texts, reasonings

    async def flush(self) -> int:
        """Store the texts (and reasoning) that grew since the last flush, in one
        batch; how many answers."""
        texts, reasonings = self._grown()
        if texts:
            try:
                await self._store.update_texts(texts, reasonings)
            except Exception:
                log.exception("could not store the texts of %d streaming answers so far",
                              len(texts))
        return len(texts)

    async def _write_while_streaming(self) -> None:
        while self._stored:
            await asyncio.sleep(self._interval)
            await self.flush()
