"""Conversations and their messages, behind one interface.

`MemoryStore` keeps them in the process (tests, benchmarks: `--database memory`);
`SqlStore` keeps them in SQLite (the default) or PostgreSQL through SQLAlchemy.
"""

from __future__ import annotations

import abc
import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tokenrelay.messages import Message

__all__ = [
    "Conversation", "StoredMessage", "Page", "Status", "Store", "Turn", "new_id", "now",
    "encode_cursor", "decode_cursor", "DEFAULT_OWNER",
]

Status = Literal["streaming", "complete", "cancelled", "error", "interrupted"]
DEFAULT_OWNER = "default"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> datetime:
    return datetime.now(UTC)


def increasing_times(count: int) -> list[datetime]:
    """`count` times from now, each after the one before: messages are ordered by
    their time, and two written in the same microsecond must keep their order."""
    times = [now()]
    for _ in range(count - 1):
        times.append(max(now(), times[-1] + timedelta(microseconds=1)))
    return times


@dataclass(slots=True)
class StoredMessage:
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
    #: for an answer: the user message it answers (regenerate adds answers to it)
    reply_to: str | None = None
    #: an answer's reasoning, and the signature that closes it (Anthropic's thinking)
    reasoning: str = ""
    reasoning_signature: str | None = None
    #: an assistant message's tool calls, `{"id", "name", "arguments"}` each
    tool_calls: list[dict[str, str]] | None = None
    #: a `tool` message: the call it answers
    tool_call_id: str | None = None


@dataclass(slots=True)
class Conversation:
    id: str
    title: str
    created: datetime
    updated: datetime
    owner: str = DEFAULT_OWNER
    model: str | None = None
    messages: list[StoredMessage] = field(default_factory=list)
    #: the name a client chose for it (the AI SDK's chat id), unique per owner
    chat_id: str | None = None

    def history(self) -> list[StoredMessage]:
        """What the model sees: every message with text or tool calls, each user
        message followed only by its latest answer (earlier versions from regenerate
        are kept, unseen)."""
        latest: dict[str, str] = {}
        for message in self.messages:
            if message.role == "assistant" and message.reply_to:
                latest[message.reply_to] = message.id
        return [
            m for m in self.messages
            if (m.content or m.tool_calls) and m.status != "streaming"
            and not (m.role == "assistant" and m.reply_to and latest[m.reply_to] != m.id)
        ]


@dataclass(frozen=True, slots=True)
class Turn:
    """What one request adds to a conversation, written in one transaction: the
    messages sent and the empty answer that streams after them."""

    conversation: Conversation
    #: True: create `conversation` too (the request started a new one)
    new: bool
    asked: list[StoredMessage]
    answer: StoredMessage

    @classmethod
    def of(cls, conversation: Conversation, *, new: bool, asked: Sequence[Asked],
           model: str, stream_id: str, reply_to: str | None = None) -> Turn:
        """The turn for `asked` (messages, or (role, content) pairs), with ids and
        increasing times. The answer replies to the last asked message when it is the
        user's, else to `reply_to` (regenerate asks nothing new)."""
        times = increasing_times(len(asked) + 1)
        asked_messages = [_asked(item, conversation.id, created)
                          for item, created in zip(asked, times, strict=False)]
        if asked_messages and asked_messages[-1].role == "user":
            reply_to = asked_messages[-1].id
        answer = StoredMessage(id=new_id("msg"), conversation_id=conversation.id,
                               role="assistant", content="", created=times[-1], model=model,
                               status="streaming", stream_id=stream_id, reply_to=reply_to)
        return cls(conversation, new, asked_messages, answer)


#: a message a request sends: a chat message, or a (role, content) pair
Asked = Message | tuple[str, str]


def _asked(item: Asked, conversation_id: str, created: datetime) -> StoredMessage:
    if isinstance(item, tuple):
        item = Message(item[0], item[1])  # type: ignore[arg-type]
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in item.tool_calls]
    return StoredMessage(id=new_id("msg"), conversation_id=conversation_id, role=item.role,
                         content=item.content, created=created, tool_calls=calls or None,
                         tool_call_id=item.tool_call_id)


@dataclass(frozen=True, slots=True)
class Page:
    conversations: list[Conversation]
    next_cursor: str | None


def encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.updated.isoformat()}|{conversation.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError for a cursor this server did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, conversation_id = raw.split("|", 1)
        updated = datetime.fromisoformat(stamp)
        if updated.tzinfo is None:
            raise ValueError("a cursor's time has a time zone")
        return updated.astimezone(UTC), conversation_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc


class Store(abc.ABC):
    async def start(self) -> None:
        """Prepare the store (migrate the schema)."""

    @abc.abstractmethod
    async def streaming_messages(self) -> list[StoredMessage]:
        """Answers stored as `streaming`: live ones, and those whose process died."""

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation | None:
        """The conversation with its messages in order, or None."""

    @abc.abstractmethod
    async def find_conversation(self, *, owner: str, chat_id: str) -> Conversation | None:
        """The owner's conversation the client named `chat_id`, with its messages, or None."""

    @abc.abstractmethod
    async def list_conversations(self, *, owner: str, limit: int,
                                 cursor: str | None = None) -> Page:
        """Newest (last updated) first; `cursor` continues after a previous page."""

    @abc.abstractmethod
    async def rename_conversation(self, conversation_id: str, *, owner: str,
                                  title: str) -> Conversation | None:
        ...

    @abc.abstractmethod
    async def delete_conversation(self, conversation_id: str, *, owner: str) -> bool:
        ...

    @abc.abstractmethod
    async def add_turn(self, turn: Turn) -> None:
        """Write `turn` at once (a half-written turn would be a question without its
        answer row); the answer is stored as `streaming`."""

    @abc.abstractmethod
    async def update_message(self, message_id: str, *, if_status: Status | None = None,
                             **changes: Any) -> None:
        """Set the given fields (content, status, error_code, error_message, usage,
        timings, reasoning, reasoning_signature, tool_calls) of an assistant message;
        with `if_status`, only while it has it."""

    async def update_texts(self, texts: Mapping[str, str],
                           reasoning: Mapping[str, str] | None = None) -> None:
        """Set the text (and reasoning) of many answers still `streaming` (message id
        -> text), in one transaction where the store has them; an answer that has
        ended keeps its own."""
        reasoning = reasoning or {}
        for message_id, text in texts.items():
            await self.update_message(message_id, if_status="streaming", content=text,
                                      reasoning=reasoning.get(message_id, ""))

    @abc.abstractmethod
    async def claim_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> str | None:
        """Record `key` for `stream_id`; if the owner already used the key, return the
        stream it was recorded for (and record nothing)."""

    @abc.abstractmethod
    async def release_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> None:
        """Forget a claim whose request failed before its answer started."""

    # --- sign-in sessions (docs/security.md: the cookie holds a session, not a key) ---

    @abc.abstractmethod
    async def add_session(self, *, digest: str, owner: str) -> None:
        """Record a session by its token's digest (the token itself is never stored)."""

    @abc.abstractmethod
    async def session_owner(self, digest: str) -> str | None:
        """The owner of the session with this digest, or None."""

    @abc.abstractmethod
    async def delete_session(self, digest: str) -> None:
        ...

    async def close(self) -> None:
        pass
