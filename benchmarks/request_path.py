"""The request path alone: the server's CPU per started stream, in this process, with
no network (issue 16: "what runs between accept and `start`").

    .venv/bin/python -m benchmarks.request_path [--requests 3000] [--rounds 3] [--quick]
        [--write] [--out DIR]

Calls the ASGI app (`create_app`, the scripted model, `--database memory`, the GC tuned
as `tokenrelay serve` does) directly, one `POST /api/chat` after another, each a stream
of one delta: Guard, the route (the fast path, or FastAPI's with `fast_path` off), the
service's start, the generation, its end and the body's writes. Prints µs of CPU per
request for each way, alternating, `--rounds` times, and their ratio. Both run in the
same process, after the server's start-up work has finished (its warm-up imports
provider SDKs in a thread, which would take the GIL from the loop). `--write` keeps a
"## The request path" section in benchmarks/RESULTS.md and its figures in
benchmarks/results/request_path.json (`--out DIR` instead; `--quick`: 200 requests,
one round, to a temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from benchmarks.relay import add_out_option, resolve_out, results_md, suite_note, write_json

HEADING = "## The request path"


def _scope(body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/chat",
            "raw_path": b"/api/chat", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {},
            "extensions": {}}


async def _one(app: Any, n: int) -> None:
    body = orjson.dumps({"messages": [{"role": "user", "content": f"s{n}"}],
                         "model": "scripted", "options": {"text": "w "}})
    ended = asyncio.Event()
    given = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif not message.get("more_body"):
            ended.set()

    await app(_scope(body), receive, send)
    if status != [200]:
        raise SystemExit(f"POST /api/chat answered {status}")


async def _measure(fast_path: bool, requests: int) -> float:
    from tokenrelay.config import Settings
    from tokenrelay.server import create_app

    app = create_app(Settings(model="scripted", database="memory", fast_path=fast_path))
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0)
        for n in range(200):  # warm
            await _one(app, n)
        start = time.process_time()
        for n in range(requests):
            await _one(app, 1000 + n)
        return (time.process_time() - start) / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_path",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 requests, once")
    parser.add_argument("--write", action="store_true")
    add_out_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 200, 1
    import uvloop

    from tokenrelay.server.runner import tune_gc

    tune_gc()
    uvloop.run(_settle())
    results: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for fast_path in (False, True):
            results[fast_path].append(uvloop.run(_measure(fast_path, args.requests)))
    lines = []
    for fast_path, label in ((False, "FastAPI's path"), (True, "the fast path")):
        runs = results[fast_path]
        lines.append(f"| {label} | {min(runs):,.0f} | " + ", ".join(f"{r:,.0f}" for r in runs)
                     + " |")
    ratio = min(results[True]) / min(results[False])
    text = ("| POST /api/chat | µs CPU per request (best) | each round |\n|---|--:|---|\n"
            + "\n".join(lines) + f"\n\n**the fast path / FastAPI's path = {ratio:.2f}**\n")
    print(text)
    if args.write:
        from benchmarks.many import write_section

        out = resolve_out(args, "request_path")
        write_section(f"{HEADING}\n\nWritten by `python -m benchmarks.request_path --requests "
                      f"{args.requests} --rounds {args.rounds} --write` "
                      f"({time.strftime('%Y-%m-%d')}){suite_note()}: the server's CPU per "
                      "started stream of one delta, in-process, no network (see the module's "
                      "docstring).\n\n" + text, results_md(out), heading=HEADING)
        write_json(out, "request_path", {
            "name": "request_path", "requests": args.requests,
            "fastapi_us": min(results[False]), "fast_path_us": min(results[True]),
            "ratio": ratio})
    return 0


async def _settle() -> None:
    """Start a server once and let its warm-up (SDK imports in a thread) finish."""
    from tokenrelay.config import Settings
    from tokenrelay.server import create_app

    app = create_app(Settings(model="scripted", database="memory"))
    async with app.router.lifespan_context(app):
        service = app.state.service
        deadline = time.monotonic() + 120
        while any(t.get_name() == "warm-up" and not t.done()
                  for t in service.background._tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
