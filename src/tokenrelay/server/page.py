"""The chat page: built by `web/` (npm) into tokenrelay/web/static, served here with
a Content-Security-Policy that forbids inline script (issue 4, "Safety"). And the API
docs (`/docs`, `/redoc`), with their assets served from here too, so that they work
with no network, as the page does."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
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


# --- the API docs ----------------------------------------------------------------------

#: where the docs' scripts and styles are served from
DOCS_ASSETS = "/docs-assets"
#: FastAPI loads Swagger UI and ReDoc from a CDN, so /docs is blank offline. The
#: fastapi-offline package ships their builds (swagger-ui-dist 5, redoc 2) in its
#: `static` folder; only those files are used here (its app factory is not: the app
#: is tokenrelay's own). tests/e2e/test_docs_offline.py breaks if they move.
_DOCS_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def docs_assets() -> Path | None:
    """The folder with the docs' assets, or None if fastapi-offline is not installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if all((folder / name).is_file() for name in _DOCS_FILES) else None


def _docs_policy(html: bytes) -> str:
    """The docs' CSP: nothing from another origin; their one inline script (FastAPI's
    start-up call) allowed by its hash. Swagger UI and ReDoc set inline styles, ReDoc
    draws with data: images and searches in a blob: worker."""
    scripts = re.findall(rb"<script>(.*?)</script>", html, re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'"
                      for s in scripts)
    return "; ".join([
        "default-src 'self'", f"script-src 'self' {hashes}".strip(),
        "style-src 'self' 'unsafe-inline'", "img-src 'self' data:", "font-src 'self'",
        "connect-src 'self'", "worker-src 'self' blob:", "object-src 'none'",
        "frame-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _docs_page(page: Response) -> Response:
    page.headers.update({"Content-Security-Policy": _docs_policy(page.body),
                         "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                         "Cache-Control": "no-cache"})
    return page


def _no_docs() -> Response:
    return error_response(503, "docs_not_installed", "The API docs' assets are not "
                          "installed: pip install 'tokenrelay[server]' (fastapi-offline).")


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    if docs_assets() is None:
        return _no_docs()
    root = request.scope.get("root_path", "")
    return _docs_page(get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="tokenrelay API",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        # No validator badge: it would send the schema's URL to swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    ))


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    if docs_assets() is None:
        return _no_docs()
    root = request.scope.get("root_path", "")
    return _docs_page(get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="tokenrelay API",
        redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False,
    ))


def mount_docs_assets(app) -> None:  # type: ignore[no-untyped-def]
    folder = docs_assets()
    if folder is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=folder), name="docs-assets")
