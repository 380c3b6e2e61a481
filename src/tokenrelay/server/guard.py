"""The gate in front of /api and /v1: request body size, API keys, request rate.

A plain ASGI middleware, so it costs nothing per streamed event: it looks at the
request once and hands the app the server's own `send`.
"""

from __future__ import annotations

import math

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenrelay.server.auth import Keys
from tokenrelay.server.errors import error_response, unauthorized
from tokenrelay.service.ratelimit import RateLimiter
from tokenrelay.service import DEFAULT_OWNER

#: routes that answer without a key: the page asks here whether it needs one, and
#: signs in here
_OPEN = ("/api/session",)


def _guarded(path: str) -> bool:
    return path.startswith(("/api/", "/v1/")) or path in ("/api", "/v1")


class Guard:
    def __init__(self, app: ASGIApp, *, keys: Keys, limiter: RateLimiter | None,
                 max_body_bytes: int):
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # Who asks comes first: nobody without a key gets the server to read a body.
        owner: str | None = DEFAULT_OWNER
        if self.keys.required:
            credential, from_cookie = self.keys.credential(headers)
            owner = await self._owner(scope, credential, from_cookie)
            if owner is None and scope["path"] not in _OPEN:
                await _unauthorized(credential, scope, receive, send)
                return
            if owner is not None and self.limiter is not None:
                wait = await self.limiter.take(owner)
                if wait is not None:
                    await _too_many(wait, self.limiter.per_minute, scope, receive, send)
                    return
        limited = await self._limit_body(headers, receive, scope, send)
        if limited is None:
            return
        scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, limited, send)

    async def _owner(self, scope: Scope, credential: str | None,
                     from_cookie: bool) -> str | None:
        """The owner a key stands for, or a session's, while its key is configured."""
        if not from_cookie:
            return self.keys.owner(credential)
        if not credential:
            return None
        owner = await scope["app"].state.service.session_owner(credential)
        return owner if self.keys.configured(owner) else None

    async def _limit_body(self, headers: Headers, receive: Receive, scope: Scope,
                          send: Send) -> Receive | None:
        """413 for a body over the limit; None when that answer has been sent. A
        declared length is checked at once; a body without one (chunked, in any
        spelling) is read up to the limit into one buffer and handed to the app as
        one message."""
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await _too_large(limit, scope, receive, send)
                return None
            return receive
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _replay(message, receive)
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(limit, scope, receive, send)
                return None
            if not message.get("more_body"):
                break
        return _replay({"type": "http.request", "body": bytes(body), "more_body": False},
                       receive)


def _replay(first: Message, receive: Receive) -> Receive:
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _unauthorized(key: str | None, scope: Scope, receive: Receive, send: Send) -> None:
    message = ("This server needs an API key: send Authorization: Bearer <key>."
               if key is None else "That API key is not valid here.")
    await unauthorized(message)(scope, receive, send)


async def _too_many(wait: float, per_minute: int, scope: Scope, receive: Receive,
                    send: Send) -> None:
    seconds = max(1, math.ceil(wait))
    response = error_response(
        429, "rate_limited",
        f"More than {per_minute} requests a minute with this key: retry in {seconds}s.")
    response.headers["Retry-After"] = str(seconds)
    await response(scope, receive, send)


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(
        413, "body_too_large",
        f"The request body is over {limit:,} bytes: send fewer or shorter messages.")
    await response(scope, receive, send)
