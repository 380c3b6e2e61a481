"""The API docs (/docs, /redoc) in real Chromium with no network but the server's: every
request to another host is aborted, and none may be made. FastAPI's own pages load
Swagger UI and ReDoc from a CDN and stay blank offline (issue 14, point 10)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.servers import Server

pytestmark = pytest.mark.timeout(120)


def _offline(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Abort every request that leaves 127.0.0.1; returns the list of those tried."""
    left: list[str] = []

    def route(route, request):  # type: ignore[no-untyped-def]
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1":
            left.append(request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.context.route("**/*", route)
    return left


def test_swagger_ui_renders_the_operations_offline(page, page_server: Server) -> None:  # type: ignore[no-untyped-def]
    left = _offline(page)
    response = page.goto(f"{page_server.url}/docs")
    assert response is not None and response.status == 200
    chat = page.locator(".opblock-post .opblock-summary-path[data-path='/api/chat']")
    chat.wait_for(state="visible")
    assert page.locator(".opblock-get .opblock-summary-path[data-path='/readyz']").is_visible()
    # An operation opens (Swagger UI's own script ran, its styles applied).
    chat.click()
    page.get_by_role("button", name="Try it out").wait_for(state="visible")
    assert left == []
    assert page.problems == []  # no console error, no CSP violation


def test_redoc_renders_the_operations_offline(page, page_server: Server) -> None:  # type: ignore[no-untyped-def]
    left = _offline(page)
    response = page.goto(f"{page_server.url}/redoc")
    assert response is not None and response.status == 200
    # ReDoc's side menu lists each operation; its right panel shows method and path.
    page.locator("[role=menuitem]", has_text="Chat").first.wait_for(state="visible")
    page.get_by_text("/api/chat", exact=True).first.wait_for(state="attached")
    assert left == []
    # ReDoc always shows Redocly's logo from its CDN; the page's CSP blocks it before
    # any request (the image then hides itself). That is the one problem allowed.
    assert [p for p in page.problems if "cdn.redoc.ly/redoc/logo-mini.svg" not in p] == []


def test_the_docs_pages_forbid_other_origins(page_server: Server) -> None:
    import httpx

    for path in ("/docs", "/redoc"):
        response = httpx.get(f"{page_server.url}{path}", timeout=10)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert httpx.get(f"{page_server.url}/docs-assets/{asset}", timeout=10).status_code == 200
