"""GET /metrics (issue 14, point 9): what an operator's Prometheus would scrape, read
with prometheus_client's own parser, after the things an operator watches happened:
streams that finish, fail, are cancelled, resumed, left by their reader or refused;
with one process, and with `--workers 2` (multiprocess mode) summed over the workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import HTTP_SERVERS, Server, start_redis, start_server
from tests.sse_client import chat, iter_events, resume

DEADLINE = 30.0


def _body(**options: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "hi"}], "model": "scripted",
            "options": options}


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by (name, labels); a fresh connection each time (with workers,
    any of them may answer)."""
    response = httpx.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def poll(url: str, ready: Callable[[dict], bool]) -> dict:
    """Scrape until `ready` holds (an end is counted just after its event goes out)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        samples = scrape(url)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


@pytest.fixture(scope="module")
def one() -> Iterator[Server]:
    with start_server("--model", "scripted") as running:
        yield running


def test_a_stream_is_counted_once_from_start_to_end(one: Server) -> None:
    before = scrape(one.url)
    received = chat(one.url, _body(text="one two three four five"))
    assert received.last[0] == "done"
    after = poll(one.url, lambda s: value(s, "tokenrelay_streams_finished_total",
                                          provider="scripted", reason="stop")
                 > value(before, "tokenrelay_streams_finished_total",
                         provider="scripted", reason="stop"))

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tokenrelay_streams_started_total", provider="scripted") == 1
    assert grew("tokenrelay_streams_finished_total", provider="scripted", reason="stop") == 1
    assert value(after, "tokenrelay_streams_in_progress", provider="scripted") == 0
    assert grew("tokenrelay_reader_disconnects_total") == 0  # it read to the end
    assert grew("tokenrelay_output_tokens_total", provider="scripted") == 5
    assert grew("tokenrelay_model_time_to_first_token_seconds_count", provider="scripted") == 1
    assert grew("tokenrelay_added_time_to_first_token_seconds_count") == 1
    assert grew("tokenrelay_output_tokens_per_second_count", provider="scripted") == 1
    # The question and answer were written, then the answer's end.
    assert grew("tokenrelay_store_write_seconds_count", operation="add_turn") == 1
    assert grew("tokenrelay_store_write_seconds_count", operation="update_message") >= 1


def test_errors_cancels_resumes_disconnects_and_refusals(one: Server) -> None:
    before = scrape(one.url)
    # An upstream failure: the stream ends with `error`, counted by its code.
    failed = chat(one.url, _body(text="a b c d", fail_after=2))
    assert failed.last == ("error", failed.last[1]) and failed.last[1]["code"] == "upstream_error"
    # A refusal: an unknown model never starts a stream.
    refused = httpx.post(f"{one.url}/api/chat", timeout=10,
                         json={**_body(), "model": "nosuchprovider"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_model"
    # A reader that leaves mid-stream, then a cancel, then a resume of the same stream.
    with httpx.stream("POST", f"{one.url}/api/chat", timeout=30,
                      json=_body(text="word " * 2000, delay_ms=20)) as response:
        stream_id = response.headers["x-stream-id"]
        for event in iter_events(response):
            if event.event == "delta":
                break
    cancelled = httpx.post(f"{one.url}/api/streams/{stream_id}/cancel", timeout=10).json()
    assert cancelled["cancelled"] is True
    resumed = resume(one.url, stream_id, after=1)
    assert resumed.last[0] == "done" and resumed.last[1]["finish_reason"] == "cancelled"

    after = poll(one.url, lambda s: value(s, "tokenrelay_reader_disconnects_total")
                 > value(before, "tokenrelay_reader_disconnects_total"))

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tokenrelay_stream_errors_total", code="upstream_error") == 1
    assert grew("tokenrelay_streams_finished_total", provider="scripted", reason="error") == 1
    assert grew("tokenrelay_output_tokens_total", provider="scripted") >= 2
    assert grew("tokenrelay_refused_total", code="unknown_model") == 1
    assert grew("tokenrelay_reader_disconnects_total") == 1
    assert grew("tokenrelay_cancels_total") == 1
    assert grew("tokenrelay_streams_finished_total", provider="scripted",
                reason="cancelled") == 1
    assert grew("tokenrelay_resumes_total") == 1
    # Two streams started (the refused request is none of them).
    assert grew("tokenrelay_streams_started_total", provider="scripted") == 2


def test_the_format_follows_the_scrapers_accept_header(one: Server) -> None:
    openmetrics = httpx.get(f"{one.url}/metrics", timeout=10,
                            headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    plain = httpx.get(f"{one.url}/metrics", timeout=10)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
def test_workers_are_summed_and_their_folder_removed(tmp_path: Path, http_server: str) -> None:
    """`--workers 2`: each worker keeps its values in PROMETHEUS_MULTIPROC_DIR (a folder
    the runner makes under TMPDIR); every scrape, whichever worker answers, shows the
    sum. The folder is gone once the server has stopped. (granian's workers, forked,
    once kept their values in memory: every scrape was empty.)"""
    streams = 8
    with start_redis() as port:
        with start_server("--model", "scripted", "--workers", "2", "--database", "memory",
                          "--redis", f"redis://127.0.0.1:{port}/0", "--server", http_server,
                          env={"TMPDIR": str(tmp_path)}) as server:
            folders = list(tmp_path.glob("tokenrelay-metrics-*"))
            assert len(folders) == 1, folders
            for _ in range(streams):  # a connection each: the workers share the socket
                assert chat(server.url, _body(text="x y z")).last[0] == "done"
            scrapes = [poll(server.url, lambda s: value(
                s, "tokenrelay_streams_finished_total", provider="scripted",
                reason="stop") == streams) for _ in range(6)]
            writers = {p.stem.rsplit("_", 1)[1] for p in folders[0].glob("counter_*.db")}
        assert not folders[0].exists(), "the runner removes its metrics folder"
    for samples in scrapes:
        assert value(samples, "tokenrelay_streams_started_total", provider="scripted") == streams
        assert value(samples, "tokenrelay_output_tokens_total", provider="scripted") == 3 * streams
        assert value(samples, "tokenrelay_streams_in_progress", provider="scripted") == 0
        assert value(samples, "tokenrelay_reader_disconnects_total") == 0
        assert value(samples, "tokenrelay_redis_round_trip_seconds_count",
                     operation="create") == streams
        assert value(samples, "tokenrelay_redis_round_trip_seconds_count",
                     operation="flush") >= 1
    print(f"\nworkers that counted streams: {len(writers)}")
