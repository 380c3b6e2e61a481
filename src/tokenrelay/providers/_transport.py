"""What the HTTP providers share: naming a connection that failed mid-answer."""

from __future__ import annotations

import httpx2

from tokenrelay.providers import ProviderError

#: what the SDKs' HTTP stack (httpx2, under openai 3.x and anthropic 2.x) raises while
#: a response body streams; the SDKs do not wrap these.
TRANSPORT_ERRORS = (httpx2.TimeoutException, httpx2.RequestError)


def mid_stream_error(exc: Exception, upstream: str) -> ProviderError:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError("upstream_timeout", f"{upstream} stopped sending mid-answer: {detail}")
    return ProviderError("upstream_disconnected",
                         f"The connection to {upstream} broke mid-answer: {detail}")
