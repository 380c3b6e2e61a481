"""What the client raises, and how a refused request maps to one (no I/O here)."""

from __future__ import annotations

import httpx

from tokenrelay.events import Error


class APIError(Exception):
    """The server refused a request: `status`, its error `code` and `message`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class StreamInterrupted(Exception):
    """The connection could not be resumed within the retries; `stream_id` and
    `last_event_id` say where to pick it up later."""

    def __init__(self, message: str, stream_id: str | None, last_event_id: int):
        super().__init__(message)
        self.stream_id, self.last_event_id = stream_id, last_event_id


class StreamFailed(Exception):
    """The answer ended with an `error` event; `text` is the partial answer."""

    def __init__(self, error: Error, text: str):
        super().__init__(f"{error.code}: {error.message}")
        self.error, self.text = error, text


class StreamMismatch(Exception):
    """The text received does not add up to the `length` the server reports: a bug
    somewhere between the two, never to be passed on silently."""


def raise_for(response: httpx.Response) -> None:
    """An APIError for a 4xx/5xx whose body has been read: DESIGN.md's error body
    `{"error": {"code", "message"}}`, or the start of whatever a proxy sent instead."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200]
    raise APIError(response.status_code, code, message)
