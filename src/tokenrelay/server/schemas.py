"""Request bodies of the HTTP API, validated by pydantic (extra fields are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatBody(BaseModel):
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
