"""API keys: who is asking. Each key is an owner (docs/security.md, "Keys and isolation").

A request authenticates with `Authorization: Bearer <key>` or, from the chat page and
EventSource (which cannot send headers), with the `tokenrelay_session` cookie that
`POST /api/session` sets: an opaque session token, never the key (the store keeps its
digest, so every host knows it; sign-out deletes it, and it stops working the moment
its key is no longer configured), HttpOnly (no script on the page can read it),
SameSite=Strict, and refused on requests a browser marks as coming from another site.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

__all__ = ["COOKIE", "Keys", "owner_of"]

COOKIE = "tokenrelay_session"
#: Sec-Fetch-Site values for which the cookie counts: the page itself, or the user
#: typing the URL; a missing header is a client that is no browser (it sends no cookie
#: unless told to)
_OWN_SITE = {"same-origin", "none"}


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def owner_of(key: str) -> str:
    """The owner a key stands for: a digest, so the database never holds the key."""
    return "key_" + hashlib.sha256(b"tokenrelay owner\0" + key.encode()).hexdigest()[:24]


class Keys:
    def __init__(self, keys: tuple[str, ...]):
        self._owners = {_digest(key): owner_of(key) for key in keys}
        self._configured = frozenset(self._owners.values())

    def configured(self, owner: str | None) -> bool:
        """Whether `owner` stands for a key this server has now (a session of a key
        that was removed is worth nothing)."""
        return owner in self._configured

    @property
    def required(self) -> bool:
        return bool(self._owners)

    def owner(self, key: str | None) -> str | None:
        """The key's owner, or None for no key or an unknown one."""
        if not key:
            return None
        digest = _digest(key)
        # Compare digests in constant time: the lookup below is by digest, so timing
        # never tells an attacker how much of a key matched.
        for known, owner in self._owners.items():
            if hmac.compare_digest(known, digest):
                return owner
        return None

    def credential(self, headers: Headers) -> tuple[str | None, bool]:
        """What a request presents: a key, or (True) the session token of the cookie."""
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), False
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        if cookie and headers.get("sec-fetch-site", "none") in _OWN_SITE:
            return cookie, True
        return None, False
