"""Serve a bare peer (benchmarks/_peers.py) with granian, as `tokenrelay serve --server
granian` serves tokenrelay (server/runner.py `serve_granian`: embedded in this process,
uvloop, HTTP/1.1, uvicorn's proxy-header middleware): the `bare-granian` servers of
benchmarks/many.py and benchmarks/relay.py, the floor granian sets as `bare` shows
uvicorn's.

    .venv/bin/python -m benchmarks._granian benchmarks._peers:paced --port 8000

Not granian's CLI: that runs the app in a worker process under a supervisor, so the
process the benchmarks watch (CPU, memory) would not be the one serving.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmarks.relay import HOST


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._granian",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("app", help="module:attribute, e.g. benchmarks._peers:paced")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    module, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module), attribute)

    from tokenrelay.server.runner import serve_granian

    serve_granian(app, args.host, args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
