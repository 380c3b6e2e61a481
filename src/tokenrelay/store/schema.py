"""The tables, as SQLAlchemy Core. Alembic migrations create them (migrations/);
this module only describes them to the queries."""

from __future__ import annotations

from sqlalchemy import (
    JSON, Column, DateTime, ForeignKey, Index, MetaData, PrimaryKeyConstraint, String, Table, Text,
)

metadata = MetaData()

conversations = Table(
    "conversations", metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("model", String(1000)),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("chat_id", String(200)),
    Index("ix_conversations_owner_updated", "owner", "updated", "id"),
    Index("ux_conversations_owner_chat_id", "owner", "chat_id", unique=True),
)

messages = Table(
    "messages", metadata,
    Column("id", String(40), primary_key=True),
    Column("conversation_id", String(40),
           ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("model", String(1000)),
    Column("status", String(20), nullable=False),
    Column("error_code", String(100)),
    Column("error_message", Text),
    Column("usage", JSON),
    Column("timings", JSON),
    Column("stream_id", String(40)),
    Column("reply_to", String(40)),
    Column("reasoning", Text, nullable=False, server_default=""),
    Column("reasoning_signature", Text),
    Column("tool_calls", JSON),
    Column("tool_call_id", String(200)),
    Column("created", DateTime(timezone=True), nullable=False),
    Index("ix_messages_conversation_created", "conversation_id", "created"),
    Index("ix_messages_status", "status"),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("owner", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("stream_id", String(40), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("owner", "key"),
)

sessions = Table(
    "sessions", metadata,
    Column("digest", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
