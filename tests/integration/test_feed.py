"""The conversation feed (issue 14, point 6): every open page of an owner hears of the
turns and changes another page makes, and a page that reconnects gets what it missed."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

import httpx

from tests.servers import Server, start_server
from tests.sse_client import chat, iter_events

DEADLINE = 30.0


class Listener:
    """A page's feed connection, read in a thread; `next()` waits for a change."""

    def __init__(self, url: str, last_event_id: str | None = None,
                 key: str | None = None) -> None:
        self.changes: queue.Queue[tuple[str, str, dict]] = queue.Queue()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        self._response = httpx.Client(timeout=DEADLINE).send(
            httpx.Request("GET", f"{url}/api/conversations/events", headers=headers),
            stream=True)
        assert self._response.status_code == 200
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in iter_events(self._response):
                self.changes.put((event.id, event.event, json.loads(event.data)))
        except httpx.HTTPError:
            pass

    def next(self) -> tuple[str, str, dict]:
        return self.changes.get(timeout=DEADLINE)

    def close(self) -> None:
        self._response.close()


def _ask(url: str, text: str, **fields: object) -> dict:
    received = chat(url, {"messages": [{"role": "user", "content": text}], "model": "scripted",
                          **fields})
    return received.named("start")[0]


def _until(listener: Listener, change: str) -> tuple[str, dict]:
    while True:
        event_id, _, data = listener.next()
        if data["change"] == change:
            return event_id, data


def test_another_page_hears_of_new_conversations_turns_and_renames(server: Server) -> None:
    other = Listener(server.url)
    try:
        start = _ask(server.url, "From the first tab")
        _, created = _until(other, "created")
        assert created["conversation_id"] == start["conversation_id"]
        assert created["title"] == "From the first tab"
        assert created["stream_id"] == start["stream_id"]  # a page may follow it live
        # The conversation is stored by the time the page hears of it.
        stored = httpx.get(f"{server.url}/api/conversations/{created['conversation_id']}")
        assert stored.status_code == 200
        _until(other, "answered")
        _ask(server.url, "A later turn", conversation_id=start["conversation_id"])
        _, turn = _until(other, "turn")
        assert turn["conversation_id"] == start["conversation_id"]
        httpx.patch(f"{server.url}/api/conversations/{start['conversation_id']}",
                    json={"title": "Renamed"})
        _, renamed = _until(other, "renamed")
        assert renamed["title"] == "Renamed"
    finally:
        other.close()


def test_a_page_that_reconnects_gets_what_it_missed(server: Server) -> None:
    page = Listener(server.url)
    first = _ask(server.url, "before the drop")
    last_id, _ = _until(page, "answered")
    page.close()
    missed = _ask(server.url, "while it was away")
    again = Listener(server.url, last_id)
    try:
        _, data = _until(again, "created")
        assert data["conversation_id"] == missed["conversation_id"] != first["conversation_id"]
    finally:
        again.close()


def test_an_id_this_server_never_gave_resets_the_page(server: Server) -> None:
    stale = Listener(server.url, "12345")
    try:
        _, name, data = stale.next()
        assert name == "reset" and data == {"change": "reset"}
    finally:
        stale.close()


def test_a_feed_carries_only_its_owners_changes() -> None:
    alice, bob = "alice-feed-key-0123456789", "bob-feed-key-0123456789"
    with start_server("--model", "scripted", env={"TOKENRELAY_API_KEYS": f"{alice},{bob}"}) as srv:
        bobs = Listener(srv.url, key=bob)
        try:
            with httpx.stream("POST", f"{srv.url}/api/chat", timeout=DEADLINE,
                              headers={"Authorization": f"Bearer {alice}"},
                              json={"messages": [{"role": "user", "content": "alice's"}]}) as r:
                list(r.iter_bytes())
            with httpx.stream("POST", f"{srv.url}/api/chat", timeout=DEADLINE,
                              headers={"Authorization": f"Bearer {bob}"},
                              json={"messages": [{"role": "user", "content": "bob's"}]}) as r:
                list(r.iter_bytes())
            _, created = _until(bobs, "created")
            assert created["title"] == "bob's", "alice's change never reached bob's feed"
        finally:
            bobs.close()
