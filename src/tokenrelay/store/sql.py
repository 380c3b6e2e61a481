"""Conversations in SQLite (aiosqlite, the default) or PostgreSQL (asyncpg), through
SQLAlchemy 2's async engine. The schema comes from the Alembic migrations, run at
start-up (`start()`), never from `create_all`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tokenrelay import metrics
from tokenrelay.errors import TokenrelayError
from tokenrelay.store import (
    Conversation, StoredMessage, Page, Status, Store, Turn, decode_cursor, encode_cursor, now,
)
from tokenrelay.store.schema import conversations, idempotency_keys, messages, sessions

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseError(TokenrelayError):
    """The database cannot be used: unreachable, or migrated by a newer tokenrelay."""

    status = 503
    code = "database_unavailable"


def _utc(value: datetime) -> datetime:
    # SQLite keeps no time zone: every stored time is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row.id, conversation_id=row.conversation_id, role=row.role, content=row.content,
        created=_utc(row.created), model=row.model, status=row.status,
        error_code=row.error_code, error_message=row.error_message, usage=row.usage,
        timings=row.timings, stream_id=row.stream_id, reply_to=row.reply_to,
        reasoning=row.reasoning or "", reasoning_signature=row.reasoning_signature,
        tool_calls=row.tool_calls, tool_call_id=row.tool_call_id,
    )


def _row(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id, "conversation_id": message.conversation_id, "role": message.role,
        "content": message.content, "model": message.model, "status": message.status,
        "stream_id": message.stream_id, "reply_to": message.reply_to,
        "created": message.created, "reasoning": message.reasoning,
        "tool_calls": message.tool_calls, "tool_call_id": message.tool_call_id,
    }


def _conversation(row: Any) -> Conversation:
    return Conversation(id=row.id, title=row.title, created=_utc(row.created),
                        updated=_utc(row.updated), owner=row.owner, model=row.model,
                        chat_id=row.chat_id)


def _migrate(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    known = {revision.revision for revision in ScriptDirectory.from_config(config).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = [revision for revision in current if revision not in known]
    if unknown:
        raise DatabaseError(
            f"The database is at schema revision {', '.join(unknown)}, which this tokenrelay "
            "does not know: a newer tokenrelay migrated it. Upgrade tokenrelay, or point "
            "--database at another database."
        )
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never wait for the writer; NORMAL: no fsync per commit (a crash
    # may lose the last commits, never corrupt), foreign keys for ON DELETE CASCADE.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: the async driver for each supported database; a URL without one gets it
_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def _async_url(url: str) -> sa.URL:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseError(
            f"--database {url!r} is not a database URL: use sqlite+aiosqlite:///path/chat.db, "
            "postgresql+asyncpg://user@host/db, or memory."
        ) from None
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise DatabaseError(f"--database {backend!r} is not supported: tokenrelay stores "
                            "conversations in SQLite or PostgreSQL.")
    return parsed.set(drivername=f"{backend}+{_DRIVERS[backend]}")


def create_engine(url: str) -> AsyncEngine:
    parsed = _async_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, connect_args={"timeout": 30})
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(parsed, pool_pre_ping=True)


class SqlStore(Store):
    def __init__(self, url: str):
        self.url = url
        self._engine = create_engine(url)

    async def start(self) -> None:
        try:
            async with self._engine.begin() as connection:
                await connection.run_sync(_migrate)
        except DatabaseError:
            raise
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            safe = make_url(self.url).render_as_string(hide_password=True)
            raise DatabaseError(f"Cannot use the database {safe}: {exc}") from exc

    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(
                conversations.select().where(conversations.c.id == conversation_id,
                                             conversations.c.owner == owner)
            )).first()
            if row is None:
                return None
            conversation = _conversation(row)
            rows = await connection.execute(
                messages.select().where(messages.c.conversation_id == conversation_id)
                .order_by(messages.c.created, messages.c.id)
            )
            conversation.messages = [_message(r) for r in rows]
        return conversation

    async def find_conversation(self, *, owner: str, chat_id: str) -> Conversation | None:
        async with self._engine.connect() as connection:
            found = await connection.scalar(
                sa.select(conversations.c.id).where(conversations.c.owner == owner,
                                                    conversations.c.chat_id == chat_id))
        return None if found is None else await self.get_conversation(str(found), owner=owner)

    async def list_conversations(self, *, owner: str, limit: int,
                                 cursor: str | None = None) -> Page:
        query = conversations.select().where(conversations.c.owner == owner)
        if cursor is not None:
            updated, conversation_id = decode_cursor(cursor)
            query = query.where(sa.or_(
                conversations.c.updated < updated,
                sa.and_(conversations.c.updated == updated, conversations.c.id < conversation_id),
            ))
        query = query.order_by(conversations.c.updated.desc(), conversations.c.id.desc())
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query.limit(limit + 1))).all()
        page = [_conversation(r) for r in rows[:limit]]
        return Page(page, encode_cursor(page[-1]) if len(rows) > limit else None)

    async def rename_conversation(self, conversation_id: str, *, owner: str,
                                  title: str) -> Conversation | None:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id, conversations.c.owner == owner)
                .values(title=title, updated=now())
            )
        if result.rowcount == 0:
            return None
        return await self.get_conversation(conversation_id, owner=owner)

    async def delete_conversation(self, conversation_id: str, *, owner: str) -> bool:
        async with self._engine.begin() as connection:
            owned = (await connection.execute(
                sa.select(conversations.c.id).where(conversations.c.id == conversation_id,
                                                    conversations.c.owner == owner)
            )).first()
            if owned is None:
                return False
            await connection.execute(
                messages.delete().where(messages.c.conversation_id == conversation_id))
            await connection.execute(
                conversations.delete().where(conversations.c.id == conversation_id))
        return True

    @metrics.store_write("add_turn")
    async def add_turn(self, turn: Turn) -> None:
        conversation, answer = turn.conversation, turn.answer
        async with self._engine.begin() as connection:
            if turn.new:
                await connection.execute(conversations.insert().values(
                    id=conversation.id, owner=conversation.owner, title=conversation.title,
                    model=answer.model, created=conversation.created, updated=answer.created,
                    chat_id=conversation.chat_id,
                ))
            else:
                await connection.execute(
                    conversations.update().where(conversations.c.id == conversation.id)
                    .values(updated=answer.created, model=answer.model))
            await connection.execute(messages.insert(), [_row(m) for m in (*turn.asked, answer)])

    @metrics.store_write("update_message")
    async def update_message(self, message_id: str, *, if_status: Status | None = None,
                             **changes: Any) -> None:
        query = messages.update().where(messages.c.id == message_id)
        if if_status is not None:
            query = query.where(messages.c.status == if_status)
        async with self._engine.begin() as connection:
            await connection.execute(query.values(**changes))

    @metrics.store_write("update_texts")
    async def update_texts(self, texts: Mapping[str, str],
                           reasoning: Mapping[str, str] | None = None) -> None:
        # One statement run for all (executemany) in one transaction: the texts of a
        # thousand streaming answers cost one round trip, not a thousand.
        reasoning = reasoning or {}
        query = (messages.update()
                 .where(messages.c.id == sa.bindparam("message_id"),
                        messages.c.status == "streaming")
                 .values(content=sa.bindparam("text"), reasoning=sa.bindparam("thought")))
        async with self._engine.begin() as connection:
            await connection.execute(query, [
                {"message_id": message_id, "text": text, "thought": reasoning.get(message_id, "")}
                for message_id, text in texts.items()])

    async def release_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(idempotency_keys.delete().where(
                idempotency_keys.c.owner == owner, idempotency_keys.c.key == key,
                idempotency_keys.c.stream_id == stream_id))

    async def streaming_messages(self) -> list[StoredMessage]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                messages.select().where(messages.c.status == "streaming"))
            return [_message(r) for r in rows]

    async def claim_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> str | None:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(idempotency_keys.insert().values(
                    owner=owner, key=key, stream_id=stream_id, created=now()))
            return None
        except IntegrityError:
            async with self._engine.connect() as connection:
                existing = await connection.scalar(
                    sa.select(idempotency_keys.c.stream_id)
                    .where(idempotency_keys.c.owner == owner, idempotency_keys.c.key == key)
                )
            return str(existing)

    async def add_session(self, *, digest: str, owner: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(sessions.insert().values(digest=digest, owner=owner,
                                                              created=now()))

    async def session_owner(self, digest: str) -> str | None:
        async with self._engine.connect() as connection:
            owner = await connection.scalar(
                sa.select(sessions.c.owner).where(sessions.c.digest == digest))
        return None if owner is None else str(owner)

    async def delete_session(self, digest: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(sessions.delete().where(sessions.c.digest == digest))

    async def close(self) -> None:
        await self._engine.dispose()
