"""The store's pure parts: cursors and turns. The store contract itself runs on every
store, PostgreSQL included, in tests/integration/test_store_contract.py."""

from __future__ import annotations

import base64

import pytest

from tokenrelay.store import Conversation, Turn, decode_cursor, encode_cursor, new_id, now


def _conversation(owner: str = "o") -> Conversation:
    created = now()
    return Conversation(id=new_id("conv"), title="t", created=created, updated=created,
                        owner=owner)


def test_a_turn_answers_the_last_user_message_after_everything_asked() -> None:
    asked = [("system", "be brief"), ("user", "one"), ("user", "two")]
    turn = Turn.of(_conversation(), new=True, asked=asked, model="m", stream_id="st_1")
    assert [(m.role, m.content) for m in turn.asked] == asked
    times = [m.created for m in (*turn.asked, turn.answer)]
    assert times == sorted(set(times)), "each message after the one before"
    answer = turn.answer
    assert (answer.role, answer.content, answer.status) == ("assistant", "", "streaming")
    assert answer.reply_to == turn.asked[-1].id and answer.stream_id == "st_1"


def test_a_turn_that_asks_nothing_answers_the_message_it_is_told() -> None:
    turn = Turn.of(_conversation(), new=False, asked=[], model="m", stream_id="st_2",
                   reply_to="msg_question")
    assert turn.asked == [] and turn.answer.reply_to == "msg_question"


def test_a_cursor_round_trips() -> None:
    conversation = _conversation()
    assert decode_cursor(encode_cursor(conversation)) == (conversation.updated, conversation.id)


@pytest.mark.parametrize("raw", ["2026-01-01T00:00:00|conv_x", "not a time|conv_x", "nobar"])
def test_a_cursor_not_made_by_the_server_is_refused(raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    with pytest.raises(ValueError):
        decode_cursor(cursor)


def test_a_cursor_in_another_time_zone_means_the_same_instant() -> None:
    cursor = base64.urlsafe_b64encode(b"2026-01-01T02:00:00+02:00|conv_x").decode()
    updated, conversation_id = decode_cursor(cursor)
    assert updated.isoformat() == "2026-01-01T00:00:00+00:00" and conversation_id == "conv_x"
