"""Keys, isolation and limits (issue 8), over real HTTP against `tokenrelay serve`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.polling import until
from tests.servers import Server, start_server
from tests.sse_client import iter_events

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


def _body(**fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted", **fields}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed() -> Iterator[Server]:
    env = {"TOKENRELAY_API_KEYS": f"{ALICE},{BOB}", "TOKENRELAY_MAX_STREAMS": "2",
           "TOKENRELAY_MAX_MESSAGES": "3", "TOKENRELAY_MAX_CHARACTERS": "1000",
           "TOKENRELAY_MAX_TOKENS_CEILING": "100", "TOKENRELAY_MAX_BODY_BYTES": "20000"}
    with start_server("--model", "scripted", env=env) as srv:
        yield srv


def _started(url: str, key: str, **body: object) -> dict[str, object]:
    """Start an answer, read it to its end; returns its `start` data."""
    with httpx.stream("POST", f"{url}/api/chat", json=_body(**body), headers=_bearer(key),
                      timeout=30) as response:
        assert response.status_code == 200, response.read()
        events = list(iter_events(response))
    assert events[-1].event == "done"
    return json.loads(events[0].data)  # type: ignore[no-any-return]


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/conversations"), ("POST", "/api/chat"), ("GET", "/api/streams/st_x"),
    ("POST", "/api/streams/st_x/cancel"), ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
])
def test_without_a_valid_key_every_api_route_is_401(keyed: Server, method: str,
                                                    path: str) -> None:
    for headers in ({}, _bearer("wrong"), {"Authorization": "Basic abc"}):
        response = httpx.request(method, keyed.url + path, headers=headers, json={}, timeout=10)
        _assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_page_and_health_need_no_key(keyed: Server) -> None:
    assert httpx.get(f"{keyed.url}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{keyed.url}/", timeout=10).status_code == 200
    session = httpx.get(f"{keyed.url}/api/session", timeout=10).json()
    assert session == {"keys_required": True, "signed_in": False}


def test_an_owner_never_sees_another_owners_conversations_or_streams(keyed: Server) -> None:
    url = keyed.url
    start = _started(url, ALICE, options={"text": "alice's secret"})
    conversation, stream = start["conversation_id"], start["stream_id"]
    as_bob = httpx.Client(base_url=url, headers=_bearer(BOB), timeout=10)
    _assert_error(as_bob.get(f"/api/conversations/{conversation}"), 404, "conversation_not_found")
    _assert_error(as_bob.patch(f"/api/conversations/{conversation}", json={"title": "mine"}),
                  404, "conversation_not_found")
    _assert_error(as_bob.delete(f"/api/conversations/{conversation}"), 404,
                  "conversation_not_found")
    _assert_error(as_bob.post(f"/api/conversations/{conversation}/regenerate"), 404,
                  "conversation_not_found")
    _assert_error(as_bob.post("/api/chat", json=_body(conversation_id=conversation)), 404,
                  "conversation_not_found")
    _assert_error(as_bob.get(f"/api/streams/{stream}"), 404, "stream_not_found")
    _assert_error(as_bob.post(f"/api/streams/{stream}/cancel"), 404, "stream_not_found")
    assert conversation not in {c["id"] for c in as_bob.get("/api/conversations").json()[
        "conversations"]}
    # Alice still has it all, untouched.
    as_alice = httpx.Client(base_url=url, headers=_bearer(ALICE), timeout=10)
    mine = as_alice.get(f"/api/conversations/{conversation}").json()
    assert mine["messages"][-1]["content"] == "alice's secret"
    assert conversation in {c["id"] for c in as_alice.get("/api/conversations").json()[
        "conversations"]}
    assert as_alice.get(f"/api/streams/{stream}").status_code == 200


def test_a_live_stream_of_another_owner_cannot_be_cancelled(keyed: Server) -> None:
    body = _body(options={"text": "word " * 100, "delay_ms": 10})
    with httpx.stream("POST", f"{keyed.url}/api/chat", json=body, headers=_bearer(ALICE),
                      timeout=30) as response:
        stream = response.headers["x-stream-id"]
        cancel = httpx.post(f"{keyed.url}/api/streams/{stream}/cancel", headers=_bearer(BOB),
                            timeout=10)
        _assert_error(cancel, 404, "stream_not_found")
        events = list(iter_events(response))
    assert json.loads(events[-1].data)["finish_reason"] == "stop"


def test_the_cookie_signs_in_an_eventsource_and_not_another_site(keyed: Server) -> None:
    url = keyed.url
    start = _started(url, ALICE, options={"text": "read me"})
    browser = httpx.Client(base_url=url, timeout=10)
    wrong = browser.post("/api/session", json={"key": "wrong"})
    _assert_error(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"
    signed = browser.post("/api/session", json={"key": ALICE})
    assert signed.status_code == 204
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    # Behind a proxy that terminated TLS (uvicorn trusts 127.0.0.1's X-Forwarded-Proto).
    proxied = httpx.post(f"{url}/api/session", json={"key": ALICE}, timeout=10,
                         headers={"X-Forwarded-Proto": "https"})
    assert "secure" in proxied.headers["set-cookie"].lower()
    assert browser.get("/api/session").json() == {"keys_required": True, "signed_in": True}
    # What an EventSource sends: no Authorization, the cookie, Sec-Fetch-Site same-origin.
    with browser.stream("GET", f"/api/streams/{start['stream_id']}",
                        headers={"Sec-Fetch-Site": "same-origin"}) as response:
        assert response.status_code == 200
        events = list(iter_events(response))
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == "read me"
    # The same cookie on a request another site's page made: refused.
    cross = browser.post("/api/chat", json=_body(), headers={"Sec-Fetch-Site": "cross-site"})
    _assert_error(cross, 401, "unauthorized")
    assert browser.delete("/api/session").status_code == 204
    _assert_error(browser.get("/api/conversations"), 401, "unauthorized")


def test_v1_is_isolated_per_key_too(keyed: Server) -> None:
    alice = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=ALICE)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="wrong").models.list()
    before = _ids(keyed, ALICE)
    completion = alice.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "hi"}],
        extra_body={"text": "for alice"})
    assert completion.choices[0].message.content == "for alice"
    stored = _ids(keyed, ALICE) - before
    assert len(stored) == 1 and not stored & _ids(keyed, BOB)


def _ids(server: Server, key: str) -> set[str]:
    listed = httpx.get(f"{server.url}/api/conversations?limit=100", headers=_bearer(key),
                       timeout=10).json()
    return {c["id"] for c in listed["conversations"]}


def test_limits_answer_clear_errors(keyed: Server) -> None:
    client = httpx.Client(base_url=keyed.url, headers=_bearer(ALICE), timeout=10)
    many = [{"role": "user", "content": "x"}] * 4
    _assert_error(client.post("/api/chat", json=_body(messages=many)), 400, "too_many_messages")
    long = [{"role": "user", "content": "x" * 1001}]
    _assert_error(client.post("/api/chat", json=_body(messages=long)), 400,
                  "too_many_characters")
    _assert_error(client.post("/api/chat", json=_body(max_tokens=101)), 400,
                  "max_tokens_too_large")
    huge = _body(messages=[{"role": "user", "content": "x" * 30000}])
    _assert_error(client.post("/api/chat", json=huge), 413, "body_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(huge).encode()

    _assert_error(client.post("/api/chat", content=chunked(),
                              headers={"Content-Type": "application/json"}), 413, "body_too_large")
    v1 = client.post("/v1/chat/completions", json={
        "model": "scripted", "messages": [{"role": "user", "content": "x" * 1001}]})
    _assert_error(v1, 400, "too_many_characters")


def test_concurrent_streams_per_key_are_limited_with_retry_after(keyed: Server) -> None:
    body = _body(options={"text": "word " * 200, "delay_ms": 10})
    with httpx.Client(base_url=keyed.url, headers=_bearer(BOB), timeout=30) as client:
        opened = [client.stream("POST", "/api/chat", json=body) for _ in range(2)]
        responses = [stream.__enter__() for stream in opened]
        assert [r.status_code for r in responses] == [200, 200]
        third = client.post("/api/chat", json=body)
        _assert_error(third, 429, "too_many_streams")
        assert int(third.headers["retry-after"]) >= 1
        # Another key is not held up by Bob's streams.
        assert httpx.post(f"{keyed.url}/api/chat", json=_body(), headers=_bearer(ALICE),
                          timeout=30).status_code == 200
        for response in responses:
            client.post(f"/api/streams/{response.headers['x-stream-id']}/cancel")
        for stream in opened:
            stream.__exit__(None, None, None)
        # The ended streams no longer count: Bob may start answers again.
        until(lambda: client.post("/api/chat", json=_body()).status_code == 200,
              "a new answer once Bob's streams ended")


def test_requests_per_minute_per_key_with_retry_after() -> None:
    env = {"TOKENRELAY_API_KEYS": f"{ALICE},{BOB}", "TOKENRELAY_RATE_LIMIT": "5"}
    with start_server("--model", "scripted", env=env) as srv:
        alice = httpx.Client(base_url=srv.url, headers=_bearer(ALICE), timeout=10)
        statuses = [alice.get("/api/conversations").status_code for _ in range(5)]
        assert statuses == [200] * 5
        limited = alice.get("/api/conversations")
        _assert_error(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 13  # one request per 12 s
        bob = httpx.get(f"{srv.url}/api/conversations", headers=_bearer(BOB), timeout=10)
        assert bob.status_code == 200


def test_no_keys_means_one_owner_and_no_sign_in(server: Server) -> None:
    session = httpx.get(f"{server.url}/api/session", timeout=10).json()
    assert session == {"keys_required": False, "signed_in": True}
    assert httpx.get(f"{server.url}/api/conversations", timeout=10).status_code == 200


def test_a_body_without_a_length_is_counted_however_chunked_is_spelled(keyed: Server) -> None:
    """httptools passes Transfer-Encoding as sent: `Chunked` must be counted too."""
    host, port = keyed.url.removeprefix("http://").split(":")
    body = json.dumps(_body(messages=[{"role": "user", "content": "x" * 30000}])).encode()
    for spelling in ("chunked", "Chunked"):
        head = (f"POST /api/chat HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ALICE}\r\n"
                f"Content-Type: application/json\r\nTransfer-Encoding: {spelling}\r\n"
                "Connection: close\r\n\r\n").encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                          for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head + chunks)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413"), (spelling, answer[:200])
        assert b'"body_too_large"' in answer


def _signed_in(url: str, key: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=url, timeout=10)
    assert browser.post("/api/session", json={"key": key}).status_code == 204
    token = browser.cookies["tokenrelay_session"]
    return browser, token


def test_the_cookie_holds_an_opaque_session_that_sign_out_ends_everywhere(
        keyed: Server) -> None:
    browser, token = _signed_in(keyed.url, ALICE)
    assert ALICE not in token and len(token) >= 40  # random, not the key or its digest
    assert browser.get("/api/conversations").status_code == 200
    assert browser.delete("/api/session").status_code == 204
    # A copy of the cookie kept elsewhere is worth nothing once signed out.
    copied = httpx.get(f"{keyed.url}/api/conversations", timeout=10,
                       cookies={"tokenrelay_session": token})
    _assert_error(copied, 401, "unauthorized")


def test_a_session_dies_when_its_key_is_removed(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    args = ("--model", "scripted", "--database", database)
    with start_server(*args, env={"TOKENRELAY_API_KEYS": f"{ALICE},{BOB}"}) as before:
        _, alice = _signed_in(before.url, ALICE)
        _, bob = _signed_in(before.url, BOB)
    # The same database (the sessions are there), ALICE's key no longer configured.
    with start_server(*args, env={"TOKENRELAY_API_KEYS": BOB}) as after:
        gone = httpx.get(f"{after.url}/api/conversations", timeout=10,
                         cookies={"tokenrelay_session": alice})
        _assert_error(gone, 401, "unauthorized")
        kept = httpx.get(f"{after.url}/api/conversations", timeout=10,
                         cookies={"tokenrelay_session": bob})
        assert kept.status_code == 200, "a session of a key still configured lives on"
