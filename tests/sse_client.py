"""Read tokenrelay streams in tests, with the package's own SSE decoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tokenrelay.sse import Decoder, Event


@dataclass
class Received:
    status: int
    headers: httpx.Headers
    events: list[Event]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events if e.event == name]

    @property
    def text(self) -> str:
        return "".join(d["text"] for d in self.named("delta"))

    @property
    def last(self) -> tuple[str, dict[str, Any]]:
        event = self.events[-1]
        return event.event, json.loads(event.data)

    @property
    def ids(self) -> list[int]:
        return [int(e.id) for e in self.events]


def iter_events(response: httpx.Response) -> Iterator[Event]:
    decoder = Decoder()
    for chunk in response.iter_bytes():
        yield from decoder.feed(chunk)


def chat(base: str, body: dict[str, Any], *, timeout: float = 60) -> Received:
    with httpx.stream("POST", f"{base}/api/chat", json=body, timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            return Received(response.status_code, response.headers, [])
        return Received(response.status_code, response.headers, list(iter_events(response)))


def resume(base: str, stream_id: str, after: int | None = None, *, timeout: float = 60) -> Received:
    headers = {} if after is None else {"Last-Event-ID": str(after)}
    with httpx.stream("GET", f"{base}/api/streams/{stream_id}", headers=headers,
                      timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            return Received(response.status_code, response.headers, [])
        return Received(response.status_code, response.headers, list(iter_events(response)))
