"""The `tokenrelay` command. Commands stay thin: they call the service and the app."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from tokenrelay.config import Settings
from tokenrelay.errors import TokenrelayError

app = typer.Typer(help="Stream LLM chat answers over Server-Sent Events.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """tokenrelay: resumable, cancellable LLM streams."""


#: what `tokenrelay serve` needs beyond the plain install (the client and the
#: terminal chat need neither), and the extra that brings it
_SERVER_EXTRA = ("fastapi", "uvicorn", "sqlalchemy", "orjson", "prometheus_client")


def _server_missing() -> str | None:
    """The first module of the server's extra that is not installed, if any."""
    import importlib.util

    for name in _SERVER_EXTRA:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ImportError:  # a broken or blocked install counts as missing
            return name
    return None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    model: Annotated[str | None, typer.Option(
        help="Default model, as provider/model (default: local, the bundled SmolLM2).")] = None,
    database: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL: sqlite+aiosqlite:///./chat.db, postgresql+asyncpg://user@host/db, "
             "or 'memory' for none. [default: SQLite in the user data directory]")] = None,
    redis: Annotated[str | None, typer.Option(
        help="Redis URL (redis://host:6379/0): a stream log shared by many processes.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Server processes; more than one needs --redis. [default: 1]")] = None,
    server: Annotated[str | None, typer.Option(
        help="HTTP server: uvicorn, or granian (pip install 'tokenrelay[granian]'; "
             "also TOKENRELAY_SERVER). [default: uvicorn]")] = None,
    retention: Annotated[float | None, typer.Option(
        help="Seconds a finished stream stays readable. [default: 600]")] = None,
    abandon_after: Annotated[float | None, typer.Option(
        help="Stop a generation nobody has read for this many seconds. [default: never]")] = None,
    api_keys_file: Annotated[str | None, typer.Option(
        help="File with one API key per line: every /api and /v1 request then needs one "
             "(also TOKENRELAY_API_KEYS=k1,k2).")] = None,
    shutdown_grace: Annotated[float | None, typer.Option(
        help="Seconds running answers get to finish on SIGTERM. [default: 20]")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the HTTP server."""
    missing = _server_missing()
    if missing is not None:
        typer.echo(f"Error: the server needs its extra ({missing} is not installed): "
                   "pip install 'tokenrelay[server]' (and 'tokenrelay[local]' for the "
                   "bundled model).", err=True)
        raise typer.Exit(2)
    from tokenrelay.providers import Registry
    from tokenrelay.server import create_app, runner
    from tokenrelay.service.backends import check_backends

    settings = Settings.from_env(
        host=host, port=port, model=model, database=database, redis=redis,
        retention=retention, abandon_after=abandon_after, workers=workers, server=server,
        api_keys_file=api_keys_file, shutdown_grace=shutdown_grace,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # Alembic says "Context impl ..." on every start and each migration it runs.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    registry = Registry()
    try:
        runner.check_server(settings)
        registry.resolve(settings.model)
        application = create_app(settings, registry)
        asyncio.run(check_backends(settings))
    except TokenrelayError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    logging.getLogger("tokenrelay").info("%s", _serving(settings))
    runner.run(application, settings, log_level=log_level)


def _masked(url: str) -> str:
    """`url` with its password, if any, as ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def _database(url: str) -> str:
    """The database as a person names it: the SQLite file, or the URL (masked)."""
    from pathlib import Path

    if url == "memory":
        return "memory (nothing is kept after a restart)"
    scheme, sep, path = url.partition(":///")
    if scheme.partition("+")[0] == "sqlite" and sep and path and path != ":memory:":
        return f"SQLite file {Path(path.partition('?')[0]).expanduser().resolve()}"
    return _masked(url)


def _serving(settings: Settings) -> str:
    """The start-up line: where, which model, which database and Redis."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    workers = f"{settings.workers} workers" if settings.workers > 1 else "1 process"
    if settings.server != "uvicorn":
        workers += f", {settings.server}"
    redis = _masked(settings.redis) if settings.redis else "none (streams in this process)"
    return (f"tokenrelay on http://{host}:{settings.port} ({workers}): model "
            f"{settings.model}, database {_database(settings.database_url)}, redis {redis}")


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """`-o key=value` pairs as provider options: the value as JSON when it parses
    (`-o delay_ms=50`, `-o fail_after=2`), else the string as written (`-o text=hi`).
    The server validates them against the provider's options model."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value: write it like -o delay_ms=50",
                                     param_hint="'-o'")
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return options


@app.command()
def chat(
    prompt: Annotated[str | None, typer.Argument(
        help="Ask this, print the answer and exit. Without it: an interactive chat "
             "(or the prompt is read from stdin when stdin is not a terminal).")] = None,
    url: Annotated[str, typer.Option(
        envvar="TOKENRELAY_URL", help="The tokenrelay server.")] = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option(
        help="Model, as provider/model. [default: the server's]")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "-o", "--option", metavar="KEY=VALUE",
        help="A provider option, repeatable; the value is JSON when it parses "
             "(-o delay_ms=50), else a string.")] = None,
    continue_id: Annotated[str | None, typer.Option(
        "--continue", "-c", metavar="CONVERSATION_ID",
        help="Continue a stored conversation (its messages are shown first).")] = None,
    hide_reasoning: Annotated[bool, typer.Option(
        "--hide-reasoning", help="Do not show a reasoning model's thinking (shown dimmed "
                                 "before the answer otherwise; never sent to a pipe).")] = False,
) -> None:
    """Chat in the terminal, the answer streamed live. Ctrl-C stops an answer."""
    from tokenrelay import terminal

    config = terminal.ChatConfig(url=url, model=model, options=_parse_options(option or []),
                                 conversation_id=continue_id,
                                 show_reasoning=not hide_reasoning)
    raise typer.Exit(terminal.run(config, prompt))


if __name__ == "__main__":
    app()
