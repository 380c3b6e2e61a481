"""Conversations kept in process memory: lost on restart (the core issue's store)."""

from __future__ import annotations

from typing import Any

from tokenrelay.store import Conversation, Message, Status, Store, new_id, now


class MemoryStore(Store):
    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._messages: dict[str, Message] = {}

    async def create_conversation(self, *, title: str, model: str, owner: str) -> Conversation:
        created = now()
        conversation = Conversation(
            id=new_id("conv"), title=title, created=created, updated=created,
            owner=owner, model=model,
        )
        self._conversations[conversation.id] = conversation
        return conversation

    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation | None:
        conversation = self._conversations.get(conversation_id)
        if conversation is None or conversation.owner != owner:
            return None
        return conversation

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
        conversation = self._conversations[conversation_id]
        message = Message(
            id=new_id("msg"), conversation_id=conversation_id, role=role, content=content,
            created=now(), model=model, status=status, stream_id=stream_id,
        )
        conversation.messages.append(message)
        conversation.updated = message.created
        if model is not None:
            conversation.model = model
        self._messages[message.id] = message
        return message

    async def update_message(self, message_id: str, **changes: Any) -> None:
        message = self._messages[message_id]
        for name, value in changes.items():
            setattr(message, name, value)
        self._conversations[message.conversation_id].updated = now()
