"""Many processes, one stream log: Redis Streams, PostgreSQL, workers, nginx in front.
Every server here is real: redis-server, PostgreSQL, tokenrelay, nginx."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.databases import Postgres
from tests.servers import Server, free_port, run_process, start_redis, start_server
from tests.sse_client import Received, chat, iter_events, resume

WORDS = "token " * 400
LEASE = "1.5"


def _body(**options: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
            "options": options}


@pytest.fixture
def redis_port() -> Iterator[int]:
    with start_redis() as port:
        yield port


@pytest.fixture
def hosts(redis_port: int, postgres: Postgres) -> Iterator[tuple[Server, Server]]:
    """Two tokenrelay processes sharing Redis and PostgreSQL, as two hosts would."""
    database = postgres.create_database()
    args = ("--model", "scripted", "--redis", f"redis://127.0.0.1:{redis_port}/0",
            "--database", database)
    env = {"TOKENRELAY_LEASE": LEASE}
    with start_server(*args, env=env) as a, start_server(*args, env=env) as b:
        yield a, b


def _started(url: str, body: dict[str, object], count: int) -> tuple[str, str, int, str]:
    """POST, read `count` events, hang up: (stream_id, conversation_id, last id, text)."""
    text = ""
    with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        conversation_id = response.headers["x-conversation-id"]
        for n, event in enumerate(iter_events(response), 1):
            if event.event == "delta":
                text += json.loads(event.data)["text"]
            if n == count:
                return stream_id, conversation_id, n, text
    raise AssertionError("the stream ended early")


def test_resume_on_another_process_continues_exactly(hosts: tuple[Server, Server]) -> None:
    a, b = hosts
    body = _body(text=WORDS, delay_ms=2)
    stream_id, _, last, text = _started(a.url, body, 10)
    rest = resume(b.url, stream_id, after=last)
    assert rest.ids[0] == last + 1 and rest.last[0] == "done"
    assert text + rest.text == WORDS
    assert resume(b.url, stream_id).ids == list(range(1, rest.ids[-1] + 1)), "a full replay"


def test_cancel_from_another_process_stops_the_model(hosts: tuple[Server, Server]) -> None:
    a, b = hosts
    stream_id, conversation_id, last, _ = _started(a.url, _body(text=WORDS, delay_ms=50), 3)
    answer = httpx.post(f"{b.url}/api/streams/{stream_id}/cancel", timeout=10).json()
    assert answer["cancelled"] is True
    rest = resume(b.url, stream_id, after=last)
    name, done = rest.last
    assert name == "done" and done["finish_reason"] == "cancelled"
    assert len(rest.named("delta")) < 10
    stored = httpx.get(f"{b.url}/api/conversations/{conversation_id}", timeout=10).json()
    assert stored["messages"][-1]["status"] == "cancelled"


def test_a_killed_producer_is_detected_and_its_answer_kept(hosts: tuple[Server, Server]) -> None:
    a, b = hosts
    stream_id, conversation_id, last, _ = _started(a.url, _body(text=WORDS, delay_ms=20), 5)
    events = []
    with httpx.stream("GET", f"{b.url}/api/streams/{stream_id}",
                      headers={"Last-Event-ID": str(last)}, timeout=30) as response:
        for event in iter_events(response):
            events.append(event)
            if len(events) == 10:
                a.process.send_signal(signal.SIGKILL)
    # The stream ends by itself (no read timeout): host b noticed the lost producer.
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["code"] == "producer_lost"
    seen = "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")
    deadline = time.monotonic() + 10
    while True:  # the reaper marks the stored answer within a lease period or two
        stored = httpx.get(f"{b.url}/api/conversations/{conversation_id}", timeout=10).json()
        answer = stored["messages"][-1]
        if answer["status"] != "streaming" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer["status"] == "interrupted"
    assert answer["content"].endswith(seen) and WORDS.startswith(answer["content"])


def test_a_redis_restart_mid_stream_loses_nothing(postgres: Postgres, tmp_path: Path) -> None:
    port = free_port()
    args = ("--model", "scripted", "--redis", f"redis://127.0.0.1:{port}/0",
            "--database", postgres.create_database())
    env = {"TOKENRELAY_LEASE": LEASE}
    with start_redis(port, tmp_path) as _, start_server(*args, env=env) as a, \
            start_server(*args, env=env) as b:
        # 400 deltas at 20 ms: the restart, started once b's reader has events,
        # lands inside the stream (the reader's own progress orders it, not a clock).
        stream_id, _, last, text = _started(a.url, _body(text=WORDS, delay_ms=20), 5)
        reading, restarted, finished = threading.Event(), threading.Event(), threading.Event()

        def restart_redis() -> None:
            reading.wait(30)
            subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"],
                           capture_output=True, check=False)
            with start_redis(port, tmp_path):
                restarted.set()
                finished.wait(60)

        restarter = threading.Thread(target=restart_redis, daemon=True)
        restarter.start()
        events = []
        with httpx.stream("GET", f"{b.url}/api/streams/{stream_id}", timeout=30,
                          headers={"Last-Event-ID": str(last)}) as response:
            for event in iter_events(response):
                events.append(event)
                if len(events) == 3:
                    reading.set()
                if event.event in ("done", "error"):
                    break
            was_restarted = restarted.is_set()
        finished.set()
        restarter.join(30)
        rest = Received(200, response.headers, events)
        assert was_restarted, "Redis did restart during the stream"
    assert rest.last[0] == "done", rest.last
    assert text + rest.text == WORDS, "readers elsewhere resume; nothing lost or doubled"
    assert rest.ids == list(range(last + 1, last + 1 + len(rest.events)))


def test_workers_need_redis() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--workers", "2", "--model", "scripted",
         "--port", str(free_port()), "--database", "memory"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--workers 2 needs --redis" in result.stderr


def test_an_unreachable_redis_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--model", "scripted", "--database",
         "memory", "--port", str(free_port()), "--redis", f"redis://127.0.0.1:{free_port()}/0"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Cannot reach Redis" in result.stderr and "Traceback" not in result.stderr


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream tokenrelay {{ server 127.0.0.1:{upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://tokenrelay;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            gzip off;
        }}
    }}
}}
"""


def test_nginx_in_front_of_two_workers_passes_tokens_unbuffered(redis_port: int) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx not found: `apt-get install nginx` (make test does this on Debian)")
    upstream, port = free_port(), free_port()
    root = Path(tempfile.mkdtemp(prefix="tokenrelay-nginx-"))
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, upstream=upstream, port=port))
    args = ["--model", "scripted", "--workers", "2", "--database", "memory",
            "--redis", f"redis://127.0.0.1:{redis_port}/0"]
    with start_server(*args, port=upstream), \
            run_process([nginx, "-p", str(root), "-c", str(root / "nginx.conf")],
                        f"http://127.0.0.1:{port}/healthz"):
        body = _body(text="first " + "slow " * 300, delay_ms=100)
        with httpx.stream("POST", f"http://127.0.0.1:{port}/api/chat", json=body,
                          timeout=30) as response:
            stream_id = response.headers["x-stream-id"]
            events = iter_events(response)
            first = next(e for e in events if e.event == "delta")
            # The first token came through while the answer is still being written
            # (30 s of it): a buffering proxy would hold it until the end. The stream
            # is still live, so the cancel finds it running.
            cancel = httpx.post(f"http://127.0.0.1:{upstream}/api/streams/{stream_id}/cancel",
                                timeout=10).json()
            assert json.loads(first.data)["text"] == "first " and cancel["cancelled"] is True
            names = [e.event for e in events]
        assert names[-1] == "done"
        # A stream started through nginx resumes and cancels through it too (either worker).
        stream_id = json.loads(chat(f"http://127.0.0.1:{port}", _body()).events[0].data)[
            "stream_id"]
        assert resume(f"http://127.0.0.1:{port}", stream_id).last[0] == "done"


def test_keys_isolate_and_rate_limit_across_hosts(redis_port: int, postgres: Postgres) -> None:
    """Ownership and the per-key rate live in Redis: another host enforces them too."""
    alice, bob = "alice-key-0123456789", "bob-key-0123456789"
    args = ("--model", "scripted", "--redis", f"redis://127.0.0.1:{redis_port}/0",
            "--database", postgres.create_database())
    env = {"TOKENRELAY_API_KEYS": f"{alice},{bob}", "TOKENRELAY_RATE_LIMIT": "8"}
    with start_server(*args, env=env) as a, start_server(*args, env=env) as b:
        if time.time() % 60 > 55:  # the shared count is per clock minute: stay inside one
            time.sleep(60 - time.time() % 60 + 0.1)
        as_alice = {"Authorization": f"Bearer {alice}"}
        as_bob = {"Authorization": f"Bearer {bob}"}
        with httpx.stream("POST", f"{a.url}/api/chat", json=_body(text="mine"),
                          headers=as_alice, timeout=30) as response:
            stream_id = response.headers["x-stream-id"]
            assert [e.event for e in iter_events(response)][-1] == "done"
        # Host b has never seen the stream: it asks Redis whose it is.
        foreign = httpx.get(f"{b.url}/api/streams/{stream_id}", headers=as_bob, timeout=10)
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "stream_not_found"
        cancel = httpx.post(f"{b.url}/api/streams/{stream_id}/cancel", headers=as_bob,
                            timeout=10)
        assert cancel.status_code == 404
        with httpx.stream("GET", f"{b.url}/api/streams/{stream_id}", headers=as_alice,
                          timeout=30) as response:
            assert response.status_code == 200
            replayed = [json.loads(e.data) for e in iter_events(response) if e.event == "delta"]
        assert "".join(d["text"] for d in replayed) == "mine"
        # Alice has made 2 requests this minute (one to a, one to b); 6 more are allowed
        # in all, whichever host they reach, then 429.
        statuses = [httpx.get(f"{(a, b)[n % 2].url}/api/conversations", headers=as_alice,
                              timeout=10).status_code for n in range(7)]
        assert statuses == [200] * 6 + [429]
        assert httpx.get(f"{a.url}/api/conversations", headers=as_bob,
                         timeout=10).status_code == 200
