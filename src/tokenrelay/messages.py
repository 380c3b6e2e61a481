"""The chat message, as both sides speak it: the Python client sends these, the server
hands them to providers. Plain data, no server dependencies (the client installs
without the server's stack, DESIGN.md "Principles")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AssistantToolCall", "Message", "Role"]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class AssistantToolCall:
    """A call the model asked for: `arguments` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str

    def openai(self) -> dict[str, Any]:
        """In OpenAI's function-tool format (`{"id", "type", "function": {...}}`)."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}

    @classmethod
    def from_openai(cls, call: Mapping[str, Any]) -> AssistantToolCall:
        function = call.get("function") or {}
        return cls(str(call.get("id", "")), str(function.get("name", "")),
                   str(function.get("arguments") or ""))


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. An assistant turn may carry `tool_calls` (its `content` then often
    empty); a `tool` turn answers the call `tool_call_id` with `content`.
    `reasoning` and `reasoning_signature` are an assistant turn's own reasoning, kept
    for the providers that need it back to continue (Anthropic's signed thinking in a
    tool loop); every other provider leaves them out."""

    role: Role
    content: str
    tool_calls: tuple[AssistantToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning: str = ""
    reasoning_signature: str | None = None
