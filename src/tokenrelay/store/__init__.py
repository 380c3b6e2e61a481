"""Conversations and their messages, behind one interface.

The in-memory store serves the core; the persistence issue adds SQLAlchemy stores
behind the same interface, and nothing above it changes.
"""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["Conversation", "Message", "Status", "Store", "new_id", "now"]

Status = Literal["streaming", "complete", "cancelled", "error", "interrupted"]
DEFAULT_OWNER = "default"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Message:
    id: str
    conversation_id: str
    role: str
    content: str
    created: datetime
    model: str | None = None
    status: Status = "complete"
    error_code: str | None = None
    error_message: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    stream_id: str | None = None


@dataclass(slots=True)
class Conversation:
    id: str
    title: str
    created: datetime
    updated: datetime
    owner: str = DEFAULT_OWNER
    model: str | None = None
    messages: list[Message] = field(default_factory=list)


class Store(abc.ABC):
    @abc.abstractmethod
    async def create_conversation(self, *, title: str, model: str, owner: str) -> Conversation:
        ...

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation | None:
        """The conversation with its messages in order, or None."""

    @abc.abstractmethod
    async def add_message(
        self,
        conversation_id: str,
        *,
        role: str,
        content: str,
        model: str | None = None,
        status: Status = "complete",
        stream_id: str | None = None,
    ) -> Message:
        ...

    @abc.abstractmethod
    async def update_message(self, message_id: str, **changes: Any) -> None:
        """Set the given fields (content, status, error_code, error_message, usage,
        timings) of an assistant message."""

    async def close(self) -> None:
        pass
