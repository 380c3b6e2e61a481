"""Conversations kept in process memory: lost on restart (`--database memory`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from tokenrelay.store import (
    Conversation, StoredMessage, Page, Status, Store, Turn, decode_cursor, encode_cursor, now,
)


class MemoryStore(Store):
    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._messages: dict[str, StoredMessage] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._sessions: dict[str, str] = {}

    def _owned(self, conversation_id: str, owner: str) -> Conversation | None:
        conversation = self._conversations.get(conversation_id)
        return conversation if conversation is not None and conversation.owner == owner else None

    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation | None:
        conversation = self._owned(conversation_id, owner)
        if conversation is None:
            return None
        # A copy, as a database would give: callers never share the live object.
        return dataclasses.replace(
            conversation, messages=[dataclasses.replace(m) for m in conversation.messages]
        )

    async def find_conversation(self, *, owner: str, chat_id: str) -> Conversation | None:
        found = next((c for c in self._conversations.values()
                      if c.owner == owner and c.chat_id == chat_id), None)
        return None if found is None else await self.get_conversation(found.id, owner=owner)

    async def list_conversations(self, *, owner: str, limit: int,
                                 cursor: str | None = None) -> Page:
        ordered = sorted((c for c in self._conversations.values() if c.owner == owner),
                         key=lambda c: (c.updated, c.id), reverse=True)
        if cursor is not None:
            after = decode_cursor(cursor)
            ordered = [c for c in ordered if (c.updated, c.id) < after]
        page = [dataclasses.replace(c, messages=[]) for c in ordered[:limit]]
        more = len(ordered) > limit
        return Page(page, encode_cursor(page[-1]) if more and page else None)

    async def rename_conversation(self, conversation_id: str, *, owner: str,
                                  title: str) -> Conversation | None:
        conversation = self._owned(conversation_id, owner)
        if conversation is None:
            return None
        conversation.title = title
        conversation.updated = now()
        return await self.get_conversation(conversation_id, owner=owner)

    async def delete_conversation(self, conversation_id: str, *, owner: str) -> bool:
        conversation = self._owned(conversation_id, owner)
        if conversation is None:
            return False
        del self._conversations[conversation_id]
        for message in conversation.messages:
            self._messages.pop(message.id, None)
        return True

    async def add_turn(self, turn: Turn) -> None:
        chat_id = turn.conversation.chat_id
        if turn.new and chat_id is not None and await self.find_conversation(
                owner=turn.conversation.owner, chat_id=chat_id) is not None:
            # As the database's unique index does: one conversation per chat id.
            raise ValueError(f"the chat id {chat_id!r} names a conversation already")
        if turn.new:
            self._conversations[turn.conversation.id] = dataclasses.replace(
                turn.conversation, messages=[])
        conversation = self._conversations[turn.conversation.id]
        for message in (*turn.asked, turn.answer):
            message = dataclasses.replace(message)  # the store's own copy
            conversation.messages.append(message)
            self._messages[message.id] = message
        conversation.updated = turn.answer.created
        conversation.model = turn.answer.model

    async def update_message(self, message_id: str, *, if_status: Status | None = None,
                             **changes: Any) -> None:
        message = self._messages.get(message_id)
        if message is None or (if_status is not None and message.status != if_status):
            return  # deleted while it streamed, or no longer in the expected state
        for name, value in changes.items():
            setattr(message, name, value)

    async def release_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> None:
        if self._keys.get((owner, key)) == stream_id:
            del self._keys[(owner, key)]

    async def streaming_messages(self) -> list[StoredMessage]:
        return [dataclasses.replace(m) for m in self._messages.values() if m.status == "streaming"]

    async def claim_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> str | None:
        existing = self._keys.get((owner, key))
        if existing is None:
            self._keys[(owner, key)] = stream_id
        return existing

    async def add_session(self, *, digest: str, owner: str) -> None:
        self._sessions[digest] = owner

    async def session_owner(self, digest: str) -> str | None:
        return self._sessions.get(digest)

    async def delete_session(self, digest: str) -> None:
        self._sessions.pop(digest, None)
