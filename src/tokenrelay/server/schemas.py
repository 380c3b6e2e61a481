"""Request bodies of the HTTP API, validated by pydantic (extra fields are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenrelay.messages import AssistantToolCall, Message
from tokenrelay.service import Tool

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class FunctionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolBody(BaseModel):
    """A tool in OpenAI's function-tool format."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionBody


class CalledFunction(BaseModel):
    name: str
    arguments: str = ""


class ToolCallBody(BaseModel):
    """An assistant message's tool call, in OpenAI's format."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: CalledFunction

    def call(self) -> AssistantToolCall:
        return AssistantToolCall(self.id, self.function.name, self.function.arguments)


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: dict[str, str]


ToolChoiceBody = Literal["auto", "none", "required"] | NamedToolChoice


class ToolFields(BaseModel):
    """What /api/chat and /v1 both accept about tools and reasoning."""

    tools: list[ToolBody] | None = None
    tool_choice: ToolChoiceBody | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: ReasoningEffort | None = None

    def tool_fields(self) -> dict[str, Any]:
        """As ChatInput's fields (tools as the provider-facing `Tool`)."""
        tools = tuple(Tool(t.function.name, t.function.description, t.function.parameters)
                      for t in self.tools or ())
        choice = self.tool_choice
        return {"tools": tools, "tool_choice": choice.model_dump()
                if isinstance(choice, NamedToolChoice) else choice,
                "parallel_tool_calls": self.parallel_tool_calls,
                "reasoning_effort": self.reasoning_effort}


class ChatMessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCallBody] | None = None
    tool_call_id: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> ChatMessageBody:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs the 'tool_call_id' it answers")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an 'assistant' message has 'tool_calls'")
        if self.content is None and not self.tool_calls:
            raise ValueError("'content' is required (it may be empty only beside tool_calls)")
        return self

    def message(self) -> Message:
        return Message(self.role, self.content or "",
                       tool_calls=tuple(c.call() for c in self.tool_calls or ()),
                       tool_call_id=self.tool_call_id)


class ChatBody(ToolFields):
    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessageBody] = Field(min_length=1)
    model: str | None = Field(None, min_length=1, description="provider/model, e.g. local")
    conversation_id: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    options: dict[str, Any] = Field(default_factory=dict, description="provider options")


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)


class RegenerateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, min_length=1, description="default: the conversation's")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    options: dict[str, Any] = Field(default_factory=dict)


class SessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=500)
