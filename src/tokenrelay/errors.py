"""Errors the service raises for bad input; the server turns each into a JSON 4xx.

Kept free of FastAPI so the CLI, the Python client and the routes share them.
"""

from __future__ import annotations


class TokenrelayError(Exception):
    """A request that cannot be served as asked: `status`, a stable `code`, a message
    that says what to do."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        #: seconds, sent as Retry-After (429, 503)
        self.retry_after = retry_after
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequest(TokenrelayError):
    status = 422
    code = "invalid_request"


class NotFound(TokenrelayError):
    status = 404
    code = "not_found"
