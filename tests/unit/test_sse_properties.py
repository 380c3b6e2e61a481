"""Properties of the SSE encoder and decoder (issue 8, "Fuzz"), checked by hypothesis.

tests/unit/test_sse.py pins the spec's examples; here the decoder meets every event a
server could send, cut into chunks anywhere (inside a UTF-8 character, between the CR
and LF of a CRLF), and bytes no server should send at all.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tokenrelay.sse import PING, Decoder, Event, comment, encode, retry

# Many examples, small inputs: the decoder is pure and fast.
settings.register_profile("sse", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
properties = settings.get_profile("sse")

_NEWLINES = re.compile(r"\r\n|\r|\n")
_LINE_ENDS = ("\n", "\r\n", "\r")

# Text a model could produce: any code point but surrogates, line breaks of every kind.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["", "\n", "\r", "\r\n", "\n\n", "a\r\nb", "\ufeffbom", "data: x", ": not a comment",
     "é日🚀", "id: 3", "\x00nul"])
names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
                min_size=1, max_size=12)
ids = st.none() | st.text(st.characters(exclude_categories=["Cs"],
                                        exclude_characters="\r\n\x00"), max_size=8)
events = st.tuples(texts, st.none() | names, ids)
# Bytes no server should send: random, or random runs of the format's own pieces (random
# bytes alone seldom hold a field name next to a CR/LF seam).
_PIECES = [b"data:", b"data: ", b"id:", b"id: 7", b"event:", b"retry:", b"retry: 15", b":",
           b" ", b"x", b"\r", b"\n", b"\r\n", b"\x00", b"\xef\xbb\xbf", b"\xe6\x97\xa5",
           b"\xe6", b"\x97", b"\xff", b"\xf0\x9f\x9a\x80"]
hostile = st.binary(max_size=300) | st.lists(st.sampled_from(_PIECES), max_size=60).map(b"".join)


def _decode(chunks: list[bytes]) -> tuple[list[Event], Decoder]:
    decoder = Decoder()
    out: list[Event] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out, decoder


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _expected(items: list[tuple[str, str | None, str | None]], retries: list[int | None]
              ) -> list[Event]:
    """What an EventSource dispatches: line breaks in data become LF, the last id and
    the reconnection time persist from earlier events."""
    out, last_id, last_retry = [], "", None
    for (data, name, id_), ms in zip(items, retries):
        last_retry = ms if ms is not None else last_retry
        last_id = id_ if id_ is not None else last_id
        out.append(Event(_NEWLINES.sub("\n", data), name or "message", last_id, last_retry))
    return out


def _with_line_ends(stream: bytes, choices: list[int]) -> bytes:
    """Re-end the encoder's LF lines with LF, CRLF or CR (§9.2.5 allows all three). A
    CR is never followed by a lone LF: together they would read as one CRLF."""
    lines = stream.split(b"\n")
    out, previous = [], ""
    for n, line in enumerate(lines[:-1]):
        end = _LINE_ENDS[choices[n % len(choices)] if choices else 0]
        if previous == "\r" and end == "\n":
            end = "\r\n"
        out.append(line + end.encode())
        previous = end
    return b"".join(out) + lines[-1]


@properties
@given(items=st.lists(events, max_size=8),
       retries=st.lists(st.none() | st.integers(0, 10**6), min_size=8, max_size=8),
       heartbeats=st.lists(st.booleans(), min_size=8, max_size=8),
       line_ends=st.lists(st.integers(0, 2), max_size=20),
       cuts=st.lists(st.integers(0, 10**6), max_size=30))
def test_encoded_events_decode_back_however_the_bytes_are_cut(
        items: list[tuple[str, str | None, str | None]], retries: list[int | None],
        heartbeats: list[bool], line_ends: list[int], cuts: list[int]) -> None:
    stream = b""
    for (data, name, id_), ms, ping in zip(items, retries, heartbeats):
        stream += (PING if ping else b"") + (retry(ms) if ms is not None else b"")
        stream += encode(data, event=name, id=id_)
    stream = _with_line_ends(stream, line_ends)

    decoded, decoder = _decode(_split(stream, cuts))

    assert decoded == _expected(items, retries)
    assert decoder.last_event_id == (decoded[-1].id if decoded else "")


@properties
@given(items=st.lists(st.tuples(texts, st.none() | names), min_size=1, max_size=6),
       crlf=st.booleans(), data=st.data())
def test_a_stream_cut_anywhere_gives_whole_events_and_a_safe_resume_point(
        items: list[tuple[str, str | None]], crlf: bool, data: st.DataObject) -> None:
    """What a client holds when its connection drops: a prefix of the events, none half
    read, and a Last-Event-ID that is the id of the last one it got (never further)."""
    frames = [encode(text, event=name, id=n) for n, (text, name) in enumerate(items, 1)]
    if crlf:
        frames = [f.replace(b"\n", b"\r\n") for f in frames]
    stream = b"".join(frames)
    at = data.draw(st.integers(0, len(stream)), label="cut at")
    cuts = data.draw(st.lists(st.integers(0, at), max_size=5), label="chunks")

    decoded, decoder = _decode(_split(stream[:at], cuts))

    # An event is whole once its blank line has ended; with CRLF, the CR ends it.
    slack = 1 if crlf else 0
    whole = sum(1 for end in _ends(frames) if end - slack <= at)
    assert decoded == _expected([(t, n, str(i)) for i, (t, n) in enumerate(items, 1)],
                                [None] * len(items))[:whole]
    assert decoder.last_event_id == (decoded[-1].id if decoded else "")


def _ends(frames: list[bytes]) -> list[int]:
    ends, total = [], 0
    for frame in frames:
        total += len(frame)
        ends.append(total)
    return ends


@properties
@given(data=hostile, cuts=st.lists(st.integers(0, 400), max_size=20))
@example(data=b"data: \xe6\x97\r\n\r\n", cuts=[7, 8])
@example(data=b"data: a\r\ndata: b\n\n", cuts=[8])
@example(data=b"\xef\xbb\xbfdata: bom\r\r", cuts=[1, 2, 13])
@example(data=b"data: a\r\n\r\n", cuts=[8, 10])
@example(data=b"retry: \xd9\xa3\nretry: 99999999999999999999\ndata: x\n\n", cuts=[])
def test_any_bytes_decode_without_raising_and_alike_in_one_piece_or_many(
        data: bytes, cuts: list[int]) -> None:
    """Bytes from a broken or hostile server never raise (invalid UTF-8 becomes U+FFFD),
    and where the chunks end changes nothing."""
    whole, whole_decoder = _decode([data])
    pieces, pieces_decoder = _decode(_split(data, cuts))
    assert pieces == whole
    assert pieces_decoder.last_event_id == whole_decoder.last_event_id
    assert pieces_decoder.retry == whole_decoder.retry
    for event in whole:
        assert isinstance(event.data, str) and "\r" not in event.data
        assert event.event and "\n" not in event.event and "\r" not in event.event


@properties
@given(data=hostile)
def test_every_byte_split_in_two_decodes_alike(data: bytes) -> None:
    """Exhaustive over the cut point for short inputs: the CR/LF and UTF-8 seams."""
    whole, _ = _decode([data])
    for at in range(len(data) + 1):
        assert _decode([data[:at], data[at:]])[0] == whole


@properties
@given(text=st.text(max_size=30), name=st.none() | st.text(max_size=10),
       id_=st.none() | st.text(max_size=10) | st.integers())
def test_encode_refuses_only_what_would_break_the_framing(
        text: str, name: str | None, id_: str | int | None) -> None:
    """The documented errors: ValueError for an id with CR, LF or NUL, or an event name
    with CR or LF; anything else encodes, and decodes back."""
    bad_id = id_ is not None and bool(re.search(r"[\r\n\x00]", str(id_)))
    bad_name = name is not None and bool(re.search(r"[\r\n]", name))
    if bad_id or bad_name:
        with pytest.raises(ValueError):
            encode(text, event=name, id=id_)
        return
    decoded, _ = _decode([encode(text, event=name, id=id_)])
    assert decoded == [Event(_NEWLINES.sub("\n", text), name or "message",
                             "" if id_ is None else str(id_))]


@properties
@given(text=texts)
def test_comments_never_dispatch(text: str) -> None:
    decoded, decoder = _decode([comment(text), PING, retry(5), comment(text)])
    assert decoded == [] and decoder.last_event_id == "" and decoder.retry == 5
