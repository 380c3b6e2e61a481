"""The batched writer of streaming answers' texts (service/answers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from tokenrelay.service.answers import AnswerTexts
from tokenrelay.service.background import Background
from tokenrelay.store.memory import MemoryStore


class BatchStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[dict[str, str]] = []
        self.reasonings: list[dict[str, str]] = []

    async def update_texts(self, texts: Mapping[str, str],
                           reasoning: Mapping[str, str] | None = None) -> None:
        self.batches.append(dict(texts))
        self.reasonings.append(dict(reasoning or {}))


@dataclass(eq=False)
class Growing:
    message_id: str
    text: str = ""
    reasoning: str = ""

    @property
    def length(self) -> int:
        return len(self.text)

    @property
    def reasoning_length(self) -> int:
        return len(self.reasoning)


async def test_one_batch_holds_every_answer_that_grew_and_only_those() -> None:
    store = BatchStore()
    texts = AnswerTexts(store, Background(), interval=3600)
    answers = [Growing(f"msg_{n}") for n in range(20)]
    for answer in answers:
        texts.track(answer)
        answer.text = "word "
    assert await texts.flush() == 20
    assert store.batches == [{f"msg_{n}": "word " for n in range(20)}]
    answers[3].text += "more"
    assert await texts.flush() == 1
    assert store.batches[-1] == {"msg_3": "word more"}
    assert await texts.flush() == 0  # nothing grew: no write
    assert len(store.batches) == 2


async def test_an_answer_that_ended_is_no_longer_written() -> None:
    store = BatchStore()
    texts = AnswerTexts(store, Background(), interval=3600)
    answer = Growing("msg_1")
    texts.track(answer)
    texts.untrack(answer)  # its generation ended (and stored its end itself)
    answer.text = "late"
    assert await texts.flush() == 0 and store.batches == []


async def test_reasoning_that_grows_is_stored_with_its_text() -> None:
    store = BatchStore()
    texts = AnswerTexts(store, Background(), interval=3600)
    answer = Growing("msg_1")
    texts.track(answer)
    answer.reasoning = "thinking about it"  # no text yet: a reasoning model's first phase
    assert await texts.flush() == 1
    assert store.batches[-1] == {"msg_1": ""}
    assert store.reasonings[-1] == {"msg_1": "thinking about it"}
