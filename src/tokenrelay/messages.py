"""The chat message, as both sides speak it: the Python client sends these, the server
hands them to providers. Plain data, no server dependencies (the client installs
without the server's stack, DESIGN.md "Principles")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Message", "Role"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
