"""A store that keeps nothing: for calls whose client opted out (`store: false` on
/v1/chat/completions). The generation runs the same; nothing is written."""

from __future__ import annotations

from typing import Any

from tokenrelay.store import Conversation, Message, Page, Status, Store, new_id, now


class NullStore(Store):
    async def create_conversation(self, *, title: str, model: str, owner: str) -> Conversation:
        created = now()
        return Conversation(id=new_id("conv"), title=title, created=created, updated=created,
                            owner=owner, model=model)

    async def get_conversation(self, conversation_id: str, *, owner: str) -> Conversation | None:
        return None

    async def list_conversations(self, *, owner: str, limit: int,
                                 cursor: str | None = None) -> Page:
        return Page([], None)

    async def rename_conversation(self, conversation_id: str, *, owner: str,
                                  title: str) -> Conversation | None:
        return None

    async def delete_conversation(self, conversation_id: str, *, owner: str) -> bool:
        return False

    async def add_message(self, conversation_id: str, *, role: str, content: str,
                          model: str | None = None, status: Status = "complete",
                          stream_id: str | None = None, reply_to: str | None = None) -> Message:
        return Message(id=new_id("msg"), conversation_id=conversation_id, role=role,
                       content=content, created=now(), model=model, status=status,
                       stream_id=stream_id, reply_to=reply_to)

    async def update_message(self, message_id: str, *, if_status: Status | None = None,
                             **changes: Any) -> None:
        pass

    async def release_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> None:
        pass

    async def streaming_messages(self) -> list[Message]:
        return []

    async def claim_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> str | None:
        return None
