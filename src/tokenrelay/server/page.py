"""The chat page: built by `web/` (npm) into tokenrelay/web/static, served here with
a Content-Security-Policy that forbids inline script (issue 4, "Safety")."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response

from tokenrelay.server.errors import error_response

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

#: Model output is untrusted: even if markup slipped past the sanitizer, no inline
#: script, handler, plugin, frame or foreign connection would run or load.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _index() -> Response:
    index = STATIC / "index.html"
    if not index.is_file():
        return error_response(503, "page_not_built",
                              "The chat page is not built: run `make web` (needs npm).")
    return FileResponse(index, headers=PAGE_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> Response:
    return _index()


@router.api_route("/c/{conversation_id}", methods=["GET", "HEAD"])
async def conversation_page(conversation_id: str) -> Response:
    """Each conversation has its own URL; the page loads it from the API."""
    return _index()


class _Assets(StaticFiles):
    """Hashed build files: cacheable for a year, with the same CSP."""

    async def get_response(self, path: str, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_assets(app) -> None:  # type: ignore[no-untyped-def]
    assets = STATIC / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    app.mount("/assets", _Assets(directory=assets), name="assets")
