"""The store contract: what every `Store` promises, run on each one tokenrelay ships —
`MemoryStore`, `SqlStore` on SQLite (a temp file) and `SqlStore` on a real PostgreSQL
(tests/databases.py). Only the public `Store` API is used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tokenrelay.store import Conversation, Store, StoredMessage, Turn, new_id, now
from tokenrelay.store.memory import MemoryStore
from tokenrelay.store.sql import SqlStore


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None for the in-memory store, else a fresh database's URL."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres").create_database()  # type: ignore[no-any-return]


@pytest.fixture
async def store(store_url: str | None) -> AsyncIterator[Store]:
    opened: Store = MemoryStore() if store_url is None else SqlStore(store_url)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


def _conversation(owner: str = "o", title: str = "t") -> Conversation:
    created = now()
    return Conversation(id=new_id("conv"), title=title, created=created, updated=created,
                        owner=owner)


async def _ask(store: Store, owner: str = "o", title: str = "t",
               asked: tuple[tuple[str, str], ...] = (("user", "hi"),)) -> Turn:
    """A new conversation with `asked` and an empty streaming answer, stored."""
    turn = Turn.of(_conversation(owner, title), new=True, asked=list(asked), model="m",
                   stream_id=new_id("st"))
    await store.add_turn(turn)
    return turn


async def _get(store: Store, turn: Turn) -> Conversation:
    stored = await store.get_conversation(turn.conversation.id, owner=turn.conversation.owner)
    assert stored is not None
    return stored


def _answer(conversation: Conversation) -> StoredMessage:
    return conversation.messages[-1]


# --- conversations ---------------------------------------------------------------------


async def test_a_new_conversation_is_read_back_with_its_turn(store: Store) -> None:
    turn = await _ask(store, title="Greetings")
    stored = await _get(store, turn)
    assert (stored.id, stored.title, stored.owner, stored.model) == (
        turn.conversation.id, "Greetings", "o", "m")
    assert stored.created == turn.conversation.created
    assert stored.created.tzinfo is not None and stored.updated.tzinfo is not None
    assert [(m.id, m.role, m.content, m.status) for m in stored.messages] == [
        (turn.asked[0].id, "user", "hi", "complete"),
        (turn.answer.id, "assistant", "", "streaming"),
    ]
    assert _answer(stored).stream_id == turn.answer.stream_id
    assert _answer(stored).created == turn.answer.created
    assert await store.get_conversation("conv_nope", owner="o") is None


async def test_a_turn_keeps_its_order_and_the_answer_replies_to_the_question(store: Store) -> None:
    asked = (("system", "be brief"), ("user", "one"), ("user", "two"))
    turn = await _ask(store, asked=asked)
    stored = await _get(store, turn)
    assert [(m.role, m.content) for m in stored.messages] == [*asked, ("assistant", "")]
    assert [m.created for m in stored.messages] == sorted({m.created for m in stored.messages})
    assert _answer(stored).reply_to == stored.messages[2].id


async def test_a_later_turn_continues_the_conversation_and_moves_it_first(store: Store) -> None:
    turn = await _ask(store)
    other = await _ask(store)
    later = Turn.of(await _get(store, turn), new=False, asked=[("user", "and then?")],
                    model="m2", stream_id=new_id("st"))
    await store.add_turn(later)
    stored = await _get(store, turn)
    assert [m.content for m in stored.messages] == ["hi", "", "and then?", ""]
    assert stored.model == "m2" and stored.updated == later.answer.created
    page = await store.list_conversations(owner="o", limit=10)
    assert [c.id for c in page.conversations] == [turn.conversation.id, other.conversation.id]


async def test_a_second_answer_to_the_same_question_is_kept_as_a_later_version(
        store: Store) -> None:
    turn = await _ask(store)
    await store.update_message(turn.answer.id, status="complete", content="first")
    question = turn.asked[0]
    again = Turn.of(await _get(store, turn), new=False, asked=[], model="m",
                    stream_id=new_id("st"), reply_to=question.id)
    await store.add_turn(again)
    await store.update_message(again.answer.id, status="complete", content="second")
    stored = await _get(store, turn)
    assert [(m.content, m.reply_to) for m in stored.messages] == [
        ("hi", None), ("first", question.id), ("second", question.id)]
    assert [m.content for m in stored.history()] == ["hi", "second"]


async def test_rename_changes_the_title_and_the_update_time(store: Store) -> None:
    turn = await _ask(store, title="old")
    renamed = await store.rename_conversation(turn.conversation.id, owner="o", title="new")
    assert renamed is not None and renamed.title == "new"
    assert renamed.updated >= turn.answer.created
    assert [m.id for m in renamed.messages] == [turn.asked[0].id, turn.answer.id]
    assert (await _get(store, turn)).title == "new"
    assert await store.rename_conversation("conv_nope", owner="o", title="x") is None


async def test_delete_removes_the_conversation_and_its_messages(store: Store) -> None:
    turn = await _ask(store)
    kept = await _ask(store)
    assert await store.delete_conversation(turn.conversation.id, owner="o") is True
    assert await store.get_conversation(turn.conversation.id, owner="o") is None
    assert await store.delete_conversation(turn.conversation.id, owner="o") is False
    page = await store.list_conversations(owner="o", limit=10)
    assert [c.id for c in page.conversations] == [kept.conversation.id]
    assert [m.id for m in await store.streaming_messages()] == [kept.answer.id]
    # An answer still generating when its conversation went: its writes are no-ops.
    await store.update_message(turn.answer.id, status="complete", content="late")
    await store.update_texts({turn.answer.id: "late"})
    assert await store.get_conversation(turn.conversation.id, owner="o") is None


async def test_another_owners_conversation_is_not_found_renamed_or_deleted(store: Store) -> None:
    mine = await _ask(store, owner="alice", title="mine")
    assert await store.get_conversation(mine.conversation.id, owner="bob") is None
    assert await store.rename_conversation(mine.conversation.id, owner="bob", title="x") is None
    assert await store.delete_conversation(mine.conversation.id, owner="bob") is False
    assert (await store.list_conversations(owner="bob", limit=10)).conversations == []
    stored = await _get(store, mine)
    assert stored.title == "mine" and len(stored.messages) == 2


# --- pages -----------------------------------------------------------------------------


async def test_pages_follow_their_cursors_newest_first_without_gaps(store: Store) -> None:
    turns = [await _ask(store, title=f"c{n}") for n in range(5)]
    await _ask(store, owner="someone else")
    newest_first = [t.conversation.id for t in reversed(turns)]

    seen, cursor, sizes = [], None, []
    for _ in range(5):  # a cursor that never ends fails the test, not the run
        page = await store.list_conversations(owner="o", limit=2, cursor=cursor)
        seen += [c.id for c in page.conversations]
        sizes.append(len(page.conversations))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == newest_first and sizes == [2, 2, 1]
    assert all(c.messages == [] for c in page.conversations), "a page lists, it does not load"

    whole = await store.list_conversations(owner="o", limit=5)
    assert [c.id for c in whole.conversations] == newest_first
    assert whole.next_cursor is None, "no next page when the last one is full"
    assert [c.title for c in whole.conversations] == ["c4", "c3", "c2", "c1", "c0"]


async def test_a_cursor_skips_what_it_already_gave_when_one_moves_up(store: Store) -> None:
    first, second, third = [await _ask(store) for _ in range(3)]
    page = await store.list_conversations(owner="o", limit=1)
    assert [c.id for c in page.conversations] == [third.conversation.id]
    await store.rename_conversation(first.conversation.id, owner="o", title="bumped")
    rest = await store.list_conversations(owner="o", limit=10, cursor=page.next_cursor)
    # `first` moved above the cursor: the next page holds only what was below it.
    assert [c.id for c in rest.conversations] == [second.conversation.id]


# --- answers ---------------------------------------------------------------------------


async def test_update_message_sets_every_field_an_answer_has(store: Store) -> None:
    turn = await _ask(store)
    text = "line one\nline two — ünïcödé 🚀"
    usage = {"input_tokens": 3, "output_tokens": 7}
    timings = {"ttft_ms": 12.5, "tokens_per_s": 40.0}
    await store.update_message(turn.answer.id, status="error", content=text,
                               error_code="upstream_error", error_message="it broke",
                               usage=usage, timings=timings)
    answer = _answer(await _get(store, turn))
    assert (answer.status, answer.content, answer.error_code, answer.error_message) == (
        "error", text, "upstream_error", "it broke")
    assert answer.usage == usage and answer.timings == timings
    assert (await _get(store, turn)).messages[0].content == "hi", "the question is untouched"


async def test_a_conditional_update_applies_only_while_the_status_holds(store: Store) -> None:
    """The reaper's write must not undo an answer that completed while it looked."""
    turn = await _ask(store)
    await store.update_message(turn.answer.id, if_status="streaming", content="so far")
    assert _answer(await _get(store, turn)).content == "so far"
    await store.update_message(turn.answer.id, status="complete", content="all")
    await store.update_message(turn.answer.id, if_status="streaming", status="interrupted",
                               content="")
    answer = _answer(await _get(store, turn))
    assert (answer.status, answer.content) == ("complete", "all")


async def test_update_texts_writes_streaming_answers_and_leaves_finished_ones(
        store: Store) -> None:
    streaming, finished = await _ask(store), await _ask(store)
    await store.update_message(finished.answer.id, status="complete", content="final")
    await store.update_texts({streaming.answer.id: "partial", finished.answer.id: "stale",
                              "msg_nope": "nobody"})
    assert _answer(await _get(store, streaming)).content == "partial"
    answer = _answer(await _get(store, finished))
    assert (answer.status, answer.content) == ("complete", "final")


async def test_streaming_messages_are_the_answers_not_yet_ended(store: Store) -> None:
    assert await store.streaming_messages() == []
    running = await _ask(store, owner="alice")
    other = await _ask(store, owner="bob")
    ended = await _ask(store)
    await store.update_message(ended.answer.id, status="cancelled")
    found = {m.id: m for m in await store.streaming_messages()}
    assert set(found) == {running.answer.id, other.answer.id}, "every owner's, none ended"
    message = found[running.answer.id]
    assert (message.conversation_id, message.stream_id, message.role, message.status) == (
        running.conversation.id, running.answer.stream_id, "assistant", "streaming")


# --- idempotency keys ------------------------------------------------------------------


async def test_an_idempotency_key_is_claimed_once_per_owner(store: Store) -> None:
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_1") is None
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_2") == "st_1"
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_3") == "st_1"
    assert await store.claim_idempotency_key(owner="other", key="k", stream_id="st_4") is None
    assert await store.claim_idempotency_key(owner="o", key="k2", stream_id="st_5") is None


async def test_a_released_idempotency_key_can_be_claimed_again(store: Store) -> None:
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_1") is None
    # A release for another stream (a request that lost the claim) keeps the claim.
    await store.release_idempotency_key(owner="o", key="k", stream_id="st_2")
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_3") == "st_1"
    await store.release_idempotency_key(owner="o", key="k", stream_id="st_1")
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_4") is None
    assert await store.claim_idempotency_key(owner="o", key="k", stream_id="st_5") == "st_4"
