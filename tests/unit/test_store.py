"""The store contract, on the in-memory store (the SQL one runs it over HTTP)."""

from __future__ import annotations

import base64

import pytest

from tokenrelay.store import decode_cursor
from tokenrelay.store.memory import MemoryStore


async def test_a_conditional_update_leaves_a_message_that_moved_on() -> None:
    """The reaper's write must not undo an answer that completed while it looked."""
    store = MemoryStore()
    conversation = await store.create_conversation(title="t", model="m", owner="o")
    answer = await store.add_message(conversation.id, role="assistant", content="",
                                     status="streaming")
    await store.update_message(answer.id, status="complete", content="all")
    await store.update_message(answer.id, if_status="streaming", status="interrupted")
    stored = await store.get_conversation(conversation.id, owner="o")
    assert stored is not None and stored.messages[0].status == "complete"


async def test_a_released_idempotency_key_can_be_claimed_again() -> None:
    store = MemoryStore()
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="s1") is None
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="s2") == "s1"
    await store.release_idempotency_key(owner="o", key="k", stream_id="s1")
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="s3") is None
    assert await store.claim_idempotency_key(owner="other", key="k", stream_id="s4") is None


@pytest.mark.parametrize("raw", ["2026-01-01T00:00:00|conv_x", "not a time|conv_x", "nobar"])
def test_a_cursor_not_made_by_the_server_is_refused(raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    with pytest.raises(ValueError):
        decode_cursor(cursor)


def test_a_cursor_in_another_time_zone_means_the_same_instant() -> None:
    cursor = base64.urlsafe_b64encode(b"2026-01-01T02:00:00+02:00|conv_x").decode()
    updated, conversation_id = decode_cursor(cursor)
    assert updated.isoformat() == "2026-01-01T00:00:00+00:00" and conversation_id == "conv_x"
