"""The boundaries DESIGN.md draws, checked on the source: the server talks only to the
service, and the client side installs and runs without the server's stack."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import tokenrelay

PACKAGE = Path(tokenrelay.__file__).parent
#: what server/* may import of tokenrelay (DESIGN.md "Parts", issue 12)
SERVER_MAY_IMPORT = ("tokenrelay.server", "tokenrelay.service", "tokenrelay.errors",
                     "tokenrelay.sse", "tokenrelay.config", "tokenrelay.events",
                     "tokenrelay.messages")
#: the service's parts, which no route reaches into
SERVICE_INSIDES = {"streams", "store", "registry", "settings"}
#: the server's stack and the model runtime: the plain install has none of them
HEAVY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "orjson",
         "openai", "anthropic", "redis", "llama_cpp", "asyncpg", "aiosqlite")


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_server_imports_the_service_never_its_parts() -> None:
    for path in sorted((PACKAGE / "server").glob("*.py")):
        for module in _runtime_imports(ast.parse(path.read_text())):
            if module.startswith("tokenrelay"):
                assert module.startswith(SERVER_MAY_IMPORT), f"{path.name} imports {module}"


def test_no_route_reaches_into_the_service() -> None:
    for path in sorted((PACKAGE / "server").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in SERVICE_INSIDES:
                owner = ast.unparse(node.value)
                assert not owner.endswith("service"), f"{path.name}: {ast.unparse(node)}"


_BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {HEAVY!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
            return None

    sys.meta_path.insert(0, Blocked())
""")


def _plain(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a Python that cannot import the server's stack or the model."""
    return subprocess.run([sys.executable, "-c", _BLOCKER + textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=60)


def test_the_client_and_the_terminal_import_without_the_server_stack() -> None:
    done = _plain("""
        import tokenrelay
        from tokenrelay import AsyncClient, Client, Message
        import tokenrelay.cli, tokenrelay.terminal
        print("imported", sorted(m for m in sys.modules if m.startswith("tokenrelay")))
    """)
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout


def test_serve_without_the_server_extra_says_what_to_install() -> None:
    done = _plain("""
        from tokenrelay.cli import app
        app(["serve"])
    """)
    assert done.returncode == 2, done.stderr
    assert "pip install 'tokenrelay[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_openapi_schema_builds_and_lists_every_protocol() -> None:
    """/docs, /redoc and the fuzz run all read it: one route FastAPI cannot describe
    (a streaming route without its status code) breaks them all."""
    from tokenrelay.config import Settings
    from tokenrelay.server import create_app

    paths = create_app(Settings(model="scripted", database="memory")).openapi()["paths"]
    for path in ("/api/chat", "/v1/chat/completions", "/v1/responses", "/api/aisdk/chat",
                 "/api/conversations/events", "/readyz"):
        assert path in paths, path
