"""The store contract, on the in-memory store (the SQL one runs it over HTTP)."""

from __future__ import annotations

import base64

import pytest

from tokenrelay.store import Conversation, Turn, decode_cursor, new_id, now
from tokenrelay.store.memory import MemoryStore


def _conversation(owner: str = "o") -> Conversation:
    created = now()
    return Conversation(id=new_id("conv"), title="t", created=created, updated=created,
                        owner=owner)


async def test_a_conditional_update_leaves_a_message_that_moved_on() -> None:
    """The reaper's write must not undo an answer that completed while it looked."""
    store = MemoryStore()
    conversation = _conversation()
    turn = Turn.of(conversation, new=True, asked=[("user", "hi")], model="m", stream_id="st_1")
    await store.add_turn(turn)
    answer = turn.answer
    await store.update_message(answer.id, status="complete", content="all")
    await store.update_message(answer.id, if_status="streaming", status="interrupted")
    stored = await store.get_conversation(conversation.id, owner="o")
    assert stored is not None and [m.status for m in stored.messages] == ["complete", "complete"]


async def test_a_turn_keeps_its_order_and_the_answer_replies_to_the_question() -> None:
    store = MemoryStore()
    conversation = _conversation()
    asked = [("system", "be brief"), ("user", "one"), ("user", "two")]
    turn = Turn.of(conversation, new=True, asked=asked, model="m", stream_id="st_1")
    await store.add_turn(turn)
    answer = turn.answer
    stored = await store.get_conversation(conversation.id, owner="o")
    assert stored is not None
    assert [(m.role, m.content) for m in stored.messages] == [*asked, ("assistant", "")]
    assert [m.created for m in stored.messages] == sorted({m.created for m in stored.messages})
    assert answer.reply_to == stored.messages[2].id and answer.status == "streaming"


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
