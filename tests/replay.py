"""A real HTTP server that answers every POST with a recorded streaming body, in the
provider's documented wire format, and keeps the request bodies it was sent: the
stand-in for the paid APIs (OpenAI, DeepSeek, vLLM, Anthropic) that cannot run here."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Replay:
    url: str
    bodies: list[bytes]
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def replaying(*names: str) -> Iterator[Replay]:
    """Serve the fixtures `names` (paths under tests/fixtures), one per request, in
    order (the last one again once they run out), on 127.0.0.1."""
    bodies = [(FIXTURES / name).read_bytes() for name in names]
    replay = Replay("", bodies)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            length = int(self.headers.get("content-length") or 0)
            replay.requests.append(json.loads(self.rfile.read(length) or b"{}"))
            body = replay.bodies[min(len(replay.requests), len(replay.bodies)) - 1]
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            for event in body.split(b"\n\n"):  # one write per event, as a network sends
                if event:
                    self.wfile.write(event + b"\n\n")
                    self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
