"""A store that keeps nothing: for calls whose client opted out (`store: false` on
/v1/chat/completions). The generation runs the same; nothing is written."""

from __future__ import annotations

from typing import Any

from tokenrelay.store import Conversation, StoredMessage, Page, Status, Store, Turn


class NullStore(Store):
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

    async def add_turn(self, turn: Turn) -> None:
        pass

    async def update_message(self, message_id: str, *, if_status: Status | None = None,
                             **changes: Any) -> None:
        pass

    async def release_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> None:
        pass

    async def streaming_messages(self) -> list[StoredMessage]:
        return []

    async def claim_idempotency_key(self, *, owner: str, key: str, stream_id: str) -> str | None:
        return None
