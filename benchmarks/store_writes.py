"""How many database writes one streamed answer costs (issue 3's closing figure).

    .venv/bin/python -m benchmarks.store_writes

Runs the chat service in-process with the real SQLite store and counts the INSERT and
UPDATE statements SQLAlchemy sends while answers of several lengths stream.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path

from sqlalchemy import event

from tokenrelay.chat import ChatInput, ChatService
from tokenrelay.config import Settings
from tokenrelay.providers import Message, Registry
from tokenrelay.providers.scripted import ScriptedProvider
from tokenrelay.store.sql import SqlStore
from tokenrelay.streams.memory import MemoryStreamLog


async def measure(tokens: int, delay_ms: float) -> tuple[Counter[str], float]:
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
        started = await service.start(ChatInput([Message("user", "count")],
                                                options={"text": "w " * tokens,
                                                         "delay_ms": delay_ms}))
        async for _ in service.streams.read(started.stream_id):
            pass
        took = loop.time() - began
        await service.shutdown()
        return counts, took


async def main() -> None:
    print("| tokens | streamed for | writes | of which text flushes | statements |")
    print("|--:|--:|--:|--:|---|")
    for tokens, delay in ((10, 10), (200, 10), (1000, 10), (100_000, 0)):
        counts, took = await measure(tokens, delay)
        flushes = counts.get("UPDATE messages", 0) - 1  # the last is the final write
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"| {tokens:,} | {took:.2f} s | {sum(counts.values())} | {flushes} | {detail} |")


if __name__ == "__main__":
    asyncio.run(main())
