"""How many database writes one streamed answer costs (issue 3's closing figure).

    .venv/bin/python -m benchmarks.store_writes

Runs the chat service in-process with the real SQLite store and counts the INSERT and
UPDATE statements SQLAlchemy sends while answers of several lengths stream, one at a
time and 100 at once (the texts of all streaming answers go in one batched statement
every 500 ms; an executemany counts as one statement).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path

from sqlalchemy import event

from tokenrelay.service import ChatInput, ChatService
from tokenrelay.config import Settings
from tokenrelay.providers import Message, Registry
from tokenrelay.providers.scripted import ScriptedProvider
from tokenrelay.store.sql import SqlStore
from tokenrelay.streams.memory import MemoryStreamLog


async def measure(tokens: int, delay_ms: float, answers: int = 1) -> tuple[Counter[str], float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(tmp) / 'chat.db'}")
        await store.start()
        service = ChatService(Settings(model="scripted"), Registry({"scripted": ScriptedProvider}),
                              MemoryStreamLog(), store)
        counts: Counter[str] = Counter()

        def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            verb = statement.lstrip().split(None, 1)[0].upper()
            if verb in {"INSERT", "UPDATE", "DELETE"}:
                counts[f"{verb} {statement.split()[2 if verb != 'UPDATE' else 1]}"] += 1

        event.listen(store._engine.sync_engine, "before_cursor_execute", count)
        loop = asyncio.get_running_loop()
        began = loop.time()
        options = {"text": "w " * tokens, "delay_ms": delay_ms}
        streams = [await service.start(ChatInput([Message("user", f"count {n}")],
                                                 options=options))
                   for n in range(answers)]

        async def read(stream_id: str) -> None:
            async for _ in service.streams.read(stream_id):
                pass

        await asyncio.gather(*(read(s.stream_id) for s in streams))
        took = loop.time() - began
        await service.shutdown()
        return counts, took


async def main() -> None:
    print("| answers at once | tokens each | streamed for | statements | of which text "
          "flushes | statements by kind |")
    print("|--:|--:|--:|--:|--:|---|")
    for answers, tokens, delay in ((1, 10, 10), (1, 200, 10), (1, 1000, 10), (1, 100_000, 0),
                                   (100, 200, 10)):
        counts, took = await measure(tokens, delay, answers)
        # the final write of each answer is one UPDATE too
        flushes = counts.get("UPDATE messages", 0) - answers
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"| {answers} | {tokens:,} | {took:.2f} s | {sum(counts.values())} | {flushes} | "
              f"{detail} |")


if __name__ == "__main__":
    asyncio.run(main())
