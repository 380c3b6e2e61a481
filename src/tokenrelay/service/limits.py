"""The configured limits on what one request may ask (docs/security.md, "Limits"),
checked before anything is stored, and the count of answers per key."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from tokenrelay.config import Settings
from tokenrelay.errors import TokenrelayError
from tokenrelay.service.generations import Generations
from tokenrelay.service.inputs import ChatInput


class Limits:
    def __init__(self, settings: Settings, generations: Generations):
        self._settings = settings
        self._generations = generations
        #: answers between their limit check and their launch, per owner
        self._starting: Counter[str] = Counter()
        #: set on SIGTERM: running answers may finish, new ones are refused
        self.closing = False

    def check(self, chat: ChatInput) -> None:
        if self.closing:
            raise TokenrelayError("The server is shutting down: retry in a moment (another "
                                  "server, or this one restarted).", code="shutting_down",
                                  status=503, retry_after=5)
        self._check_size(chat)
        self._check_streams(chat.owner)

    def _check_size(self, chat: ChatInput) -> None:
        settings = self._settings
        if len(chat.messages) > settings.max_messages:
            raise TokenrelayError(f"{len(chat.messages)} messages is over this server's limit "
                                  f"of {settings.max_messages}: send fewer.",
                                  code="too_many_messages")
        characters = sum(len(m.content) for m in chat.messages) + len(chat.instructions or "")
        if characters > settings.max_characters:
            raise TokenrelayError(f"The messages hold {characters:,} characters, over this "
                                  f"server's limit of {settings.max_characters:,}: send less text.",
                                  code="too_many_characters")
        if chat.max_tokens is not None and chat.max_tokens > settings.max_tokens_ceiling:
            raise TokenrelayError(f"max_tokens {chat.max_tokens} is over this server's limit of "
                                  f"{settings.max_tokens_ceiling}: ask for fewer.",
                                  code="max_tokens_too_large", status=400)

    def _check_streams(self, owner: str) -> None:
        limit = self._settings.max_streams
        if not limit or not self._settings.api_keys:
            return
        mine = self._starting[owner] + self._generations.of_owner(owner)
        if mine >= limit:
            raise TokenrelayError(
                f"{mine} answers are already streaming for this key (the limit is {limit}): "
                "wait for one to end, or cancel one.", code="too_many_streams",
                status=429, retry_after=2)

    @contextlib.contextmanager
    def counted(self, owner: str) -> Iterator[None]:
        """Count an answer toward its owner's streams from its limit check on, so that
        a burst cannot pass the check all at once."""
        self._starting[owner] += 1
        try:
            yield
        finally:
            self._starting[owner] -= 1
            if not self._starting[owner]:
                del self._starting[owner]
