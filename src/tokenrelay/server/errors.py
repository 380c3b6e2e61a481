"""Every error leaves as JSON: `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from tokenrelay.errors import TokenrelayError

log = logging.getLogger("tokenrelay.server")


_TYPES = {400: "invalid_request_error", 401: "authentication_error",
          403: "permission_error", 404: "not_found_error", 409: "conflict_error",
          413: "invalid_request_error", 422: "invalid_request_error",
          429: "rate_limit_error"}


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    """`{"error": {"code", "message"}}`, plus OpenAI's `type` and `param`, so that one
    shape serves tokenrelay's clients and OpenAI SDKs alike."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {"code": code, "message": message, "type": kind, "param": None, **extra}
    return JSONResponse({"error": error}, status_code=status)


def unauthorized(message: str) -> JSONResponse:
    """401 with the challenge RFC 9110 §11.6.1 asks for (Bearer: API keys)."""
    response = error_response(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _openai_status(request: Request, status: int, code: str) -> int:
    """On /v1, the status an OpenAI SDK maps to the right exception: 400 for invalid
    input (BadRequestError), 404 for an unknown model (NotFoundError)."""
    if not request.url.path.startswith("/v1/"):
        return status
    if code == "unknown_model":
        return 404
    return 400 if status == 422 else status


def _describe(error: dict) -> str:
    location = ".".join(str(part) for part in error["loc"] if part != "body")
    return f"{location}: {error['msg']}" if location else error["msg"]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(400, "invalid_json",
                              "The body is not valid JSON: send a JSON object "
                              "with Content-Type: application/json.")
    details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
               for e in errors]
    message = "Invalid request: " + "; ".join(_describe(e) for e in errors) + "."
    status = _openai_status(request, 422, "invalid_request")
    return error_response(status, "invalid_request", message, details=details)


async def _tokenrelay_error(request: Request, exc: TokenrelayError) -> JSONResponse:
    return refusal(request, exc)


def refusal(request: Request, exc: TokenrelayError) -> JSONResponse:
    """The answer to a TokenrelayError (an expected refusal: one line for the
    operator, no traceback)."""
    log.info("%s %s refused: %d %s", request.method, request.url.path, exc.status, exc.code)
    response = error_response(_openai_status(request, exc.status, exc.code), exc.code, exc.message)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "The server failed; the error is in its log.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(TokenrelayError, _tokenrelay_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
