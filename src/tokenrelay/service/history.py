"""What the model is shown: a conversation's history as provider messages, and the
conversation a first message starts."""

from __future__ import annotations

from tokenrelay.messages import AssistantToolCall, Message
from tokenrelay.service.inputs import ChatInput
from tokenrelay.store import Conversation, StoredMessage, new_id, now

#: a new conversation's title: its first user message, this long at most
TITLE_LENGTH = 80


def title_of(text: str) -> str:
    return " ".join(text.split())[:TITLE_LENGTH] or "New chat"


def new_conversation(chat: ChatInput, model: str) -> Conversation:
    first_user = next((m.content for m in chat.messages if m.role == "user"), "")
    created = now()
    return Conversation(id=new_id("conv"), title=title_of(first_user), created=created,
                        updated=created, owner=chat.owner, model=model, chat_id=chat.chat_id)


def _message(stored: StoredMessage) -> Message:
    calls = tuple(AssistantToolCall(c["id"], c["name"], c["arguments"])
                  for c in stored.tool_calls or ())
    return Message(stored.role, stored.content, tool_calls=calls,  # type: ignore[arg-type]
                   tool_call_id=stored.tool_call_id, reasoning=stored.reasoning,
                   reasoning_signature=stored.reasoning_signature)


def for_answer(conversation: Conversation, asked: tuple[Message, ...]) -> tuple[Message, ...]:
    """The history the model sees, then the messages just asked."""
    return (*(_message(m) for m in conversation.history()), *asked)


def for_regenerate(conversation: Conversation, last_user: StoredMessage) -> tuple[Message, ...]:
    """The history up to `last_user`, without any earlier answer to it."""
    return tuple(
        _message(m) for m in conversation.history()
        if m.created <= last_user.created
        and not (m.role == "assistant" and m.reply_to == last_user.id)
    )
