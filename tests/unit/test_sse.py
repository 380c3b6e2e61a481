"""Tests for `tokenrelay.sse`, checked against the WHATWG HTML Standard §9.2
"Server-sent events": the event stream format and "interpreting an event stream"."""

from __future__ import annotations

import json
from collections.abc import Iterable

import orjson
import pytest

from tokenrelay.sse import PING, Decoder, Event, comment, encode, encode_json, retry

BOM = "\ufeff".encode()
EMOJI = "🙂"  # four bytes in UTF-8: F0 9F 99 82


def decode(*chunks: bytes) -> list[Event]:
    return decode_with(chunks)[0]


def decode_with(chunks: Iterable[bytes]) -> tuple[list[Event], Decoder]:
    decoder = Decoder()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events, decoder


def data_of(events: list[Event]) -> list[str]:
    return [event.data for event in events]


# --- §9.2 examples -------------------------------------------------------------------


def test_spec_stock_ticker_joins_data_lines_with_lf() -> None:
    assert decode(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [Event(data="YHOO\n+2\n10")]


def test_spec_four_blocks_comment_id_and_id_reset() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n"
    )
    events, decoder = decode_with([stream + b"\n"])
    assert events == [
        Event(data="first event", id="1"),
        Event(data="second event", id=""),  # `id` with no value resets the ID
        Event(data=" third event", id=""),  # only one space after the colon is removed
    ]
    assert decoder.last_event_id == ""


def test_spec_empty_data_fields_and_unterminated_last_block() -> None:
    # §9.2.6: "data" alone is a field with an empty value; the last block has no blank
    # line after it, so it is never dispatched.
    events = decode(b"data\n\ndata\ndata\n\ndata:")
    assert data_of(events) == ["", "\n"]


def test_spec_space_after_colon_is_optional() -> None:
    assert data_of(decode(b"data:test\n\ndata: test\n\n")) == ["test", "test"]


def test_spec_named_events() -> None:
    stream = (
        b"event: add\ndata: 73857293\n\n"
        b"event: remove\ndata: 2153\n\n"
        b"event: add\ndata: 113411\n\n"
    )
    assert decode(stream) == [
        Event(data="73857293", event="add"),
        Event(data="2153", event="remove"),
        Event(data="113411", event="add"),
    ]


# --- line endings -------------------------------------------------------------------

TWO_EVENTS = "data: a{nl}data: b{nl}{nl}event: e{nl}data: c{nl}{nl}"


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_each_line_ending_is_understood(newline: str) -> None:
    stream = TWO_EVENTS.format(nl=newline).encode()
    assert decode(stream) == [Event(data="a\nb"), Event(data="c", event="e")]


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\rdata: b\r\ndata: c\n\r\nevent: e\r\ndata: d\r\r"
    assert decode(stream) == [Event(data="a\nb\nc"), Event(data="d", event="e")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # A spurious blank line after the CR would dispatch "a" and "b" as two events.
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [Event(data="a\nb")]


def test_pending_cr_survives_an_empty_chunk() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\n\n") == [Event(data="a\nb")]


def test_lone_cr_at_chunk_end_then_text_is_a_line_end() -> None:
    assert decode(b"data: a\r", b"data: b\r\r") == [Event(data="a\nb")]


def test_cr_at_chunk_end_then_cr_is_a_blank_line() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [Event(data="a")]


def test_cr_then_crlf_across_chunks_is_two_line_ends() -> None:
    assert decode(b"data: a\r", b"\r\ndata: b\n\n") == [Event(data="a"), Event(data="b")]


def test_event_is_returned_by_the_feed_that_completes_it() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b\n") == [Event(data="a")]
    assert decoder.feed(b"\n") == [Event(data="b")]


# --- every split point ----------------------------------------------------------------

STREAM = (
    "\ufeff"
    ": welcome\r\n"
    "retry: 2500\n"
    "id: 1\r\n"
    "event: delta\r"
    f"data: héllo {EMOJI}\n"
    "data:  two spaces\r\n"
    "\r\n"
    "data: second\rdata: 日本語\r\r"
    'id: 2\nevent: finish\ndata: {"a": 1}\n\n'
    "bogus: field\n"
    "id\n"
    f"data: \u2028sep\u0085{EMOJI}\n"
    "\n"
    ": trailing comment\r\n"
    "id: 3\n"
    "data: never dispatched"
).encode()

STREAM_EVENTS = [
    Event(data=f"héllo {EMOJI}\n two spaces", event="delta", id="1", retry=2500),
    Event(data="second\n日本語", event="message", id="1", retry=2500),
    Event(data='{"a": 1}', event="finish", id="2", retry=2500),
    Event(data=f"\u2028sep\u0085{EMOJI}", event="message", id="", retry=2500),
]


def test_representative_stream_fed_whole() -> None:
    events, decoder = decode_with([STREAM])
    assert events == STREAM_EVENTS
    assert decoder.last_event_id == ""  # "id: 3" belongs to an event never completed
    assert decoder.retry == 2500


def test_representative_stream_split_at_every_offset() -> None:
    for offset in range(len(STREAM) + 1):
        events, decoder = decode_with([STREAM[:offset], STREAM[offset:]])
        assert events == STREAM_EVENTS, f"split at byte {offset}"
        assert (decoder.last_event_id, decoder.retry) == ("", 2500), f"split at byte {offset}"


def test_representative_stream_byte_by_byte() -> None:
    events, decoder = decode_with(STREAM[i : i + 1] for i in range(len(STREAM)))
    assert events == STREAM_EVENTS
    assert (decoder.last_event_id, decoder.retry) == ("", 2500)


def test_representative_stream_split_at_every_pair_of_offsets() -> None:
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            events = decode(STREAM[:i], STREAM[i:j], STREAM[j:])
            assert events == STREAM_EVENTS, f"split at bytes {i} and {j}"


# --- UTF-8 and the BOM --------------------------------------------------------------


@pytest.mark.parametrize("offset", [1, 2, 3])
def test_four_byte_character_split_across_chunks(offset: int) -> None:
    raw = EMOJI.encode()
    assert decode(b"data: " + raw[:offset], raw[offset:] + b"\n\n") == [Event(data=EMOJI)]


def test_invalid_utf8_becomes_replacement_character() -> None:
    # §9.2.6: the stream is decoded with "UTF-8 decode", which replaces bad bytes.
    assert decode(b"data: a\xffb\n\n") == [Event(data="a\ufffdb")]


def test_leading_bom_is_stripped() -> None:
    # Unstripped, the first line's field name would be "\ufeffdata", an unknown field.
    assert decode(BOM + b"data: a\n\n") == [Event(data="a")]


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_leading_bom_split_across_chunks_is_stripped(offset: int) -> None:
    stream = BOM + b"data: a\n\n"
    assert decode(stream[:offset], stream[offset:]) == [Event(data="a")]


def test_leading_bom_after_empty_first_chunk_is_stripped() -> None:
    assert decode(b"", BOM + b"data: a\n\n") == [Event(data="a")]


def test_only_one_leading_bom_is_stripped() -> None:
    # The second BOM makes the first field "\ufeffdata", which is ignored.
    assert decode(BOM + BOM + b"data: a\n\ndata: b\n\n") == [Event(data="b")]


def test_bom_at_start_of_a_later_chunk_is_not_stripped() -> None:
    assert decode(b"data: a\n\n", BOM + b"data: b\n\ndata: c\n\n") == [
        Event(data="a"),
        Event(data="c"),
    ]


def test_bom_inside_data_is_kept() -> None:
    assert decode(b"data: " + BOM + b"x\n\n") == [Event(data="\ufeffx")]


# --- characters that are line breaks elsewhere, but not in SSE ----------------------

NOT_LINE_BREAKS = "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg\x1dh\x1ei"


def test_unicode_line_separators_are_not_line_breaks_when_decoding() -> None:
    assert decode(f"data: {NOT_LINE_BREAKS}\n\n".encode()) == [Event(data=NOT_LINE_BREAKS)]


def test_unicode_line_separators_survive_encode() -> None:
    encoded = encode(NOT_LINE_BREAKS)
    assert encoded.count(b"data:") == 1
    assert decode(encoded) == [Event(data=NOT_LINE_BREAKS)]


def test_unicode_line_separators_survive_encode_json() -> None:
    payload = {"text": NOT_LINE_BREAKS, "more": "\u2028\u2029\u0085"}
    events = decode(encode_json(orjson.dumps(payload), "delta", 5))
    assert len(events) == 1
    assert json.loads(events[0].data) == payload


# --- fields ---------------------------------------------------------------------------


def test_id_persists_across_events() -> None:
    events, decoder = decode_with([b"id: 7\ndata: a\n\ndata: b\n\n"])
    assert [e.id for e in events] == ["7", "7"]
    assert decoder.last_event_id == "7"


def test_id_containing_nul_is_ignored() -> None:
    events, decoder = decode_with([b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"])
    assert [e.id for e in events] == ["1", "1"]
    assert decoder.last_event_id == "1"


@pytest.mark.parametrize("reset", [b"id:\n", b"id: \n", b"id\n"])
def test_empty_id_resets_last_event_id(reset: bytes) -> None:
    events, decoder = decode_with([b"id: 1\ndata: a\n\n" + reset + b"data: b\n\n"])
    assert [e.id for e in events] == ["1", ""]
    assert decoder.last_event_id == ""


def test_id_only_block_sets_last_event_id_without_an_event() -> None:
    events, decoder = decode_with([b"id: 5\n\n"])
    assert events == []
    assert decoder.last_event_id == "5"


def test_id_of_an_unfinished_event_does_not_advance_last_event_id() -> None:
    # §9.2.6: "id" sets the last event ID *buffer*; the event source's last event ID
    # (what a client resumes from) takes it only at dispatch. Resuming from "2" here
    # would skip event 2, which the client never received.
    decoder = Decoder()
    assert decoder.feed(b"id: 1\ndata: a\n\nid: 2\nevent: delta\ndata: par") == [
        Event(data="a", id="1")
    ]
    assert decoder.last_event_id == "1"
    assert decoder.feed(b"tial\n\n") == [Event(data="partial", event="delta", id="2")]
    assert decoder.last_event_id == "2"


def test_retry_sets_reconnection_time_and_is_reported_on_events() -> None:
    events, decoder = decode_with([b"retry: 1500\n\ndata: a\n\n"])
    assert decoder.retry == 1500
    assert events == [Event(data="a", retry=1500)]


@pytest.mark.parametrize(
    "value",
    ["15x", "-1", "1.5", "+1", " 100", "1e3", "", "\u0661\u0662", "\u00b2", "１２"],
    ids=repr,
)
def test_retry_that_is_not_only_ascii_digits_is_ignored(value: str) -> None:
    decoder = Decoder()
    decoder.feed(f"retry: 1000\nretry: {value}\ndata: a\n\n".encode())
    assert decoder.retry == 1000


def test_unknown_fields_are_ignored_and_names_are_case_sensitive() -> None:
    assert decode(b"foo: bar\nDATA: x\nData: y\ndata: a\nevent : z\n\n") == [Event(data="a")]


def test_field_with_no_colon_has_empty_value() -> None:
    # "event" alone sets the type to "", which dispatches as "message".
    assert decode(b"event: add\nevent\ndata\n\n") == [Event(data="", event="message")]


def test_line_starting_with_colon_is_a_comment() -> None:
    assert decode(b":data: x\n: data: y\n\n") == []


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data:x", "x"),
        (b"data: x", "x"),
        (b"data:  x", " x"),
        (b"data:   x ", "  x "),
        (b"data:\tx", "\tx"),
        (b"data: a:b: c", "a:b: c"),
        (b"data: ", ""),
    ],
)
def test_one_space_after_the_colon_is_stripped(line: bytes, data: str) -> None:
    assert decode(line + b"\n\n") == [Event(data=data)]


def test_space_after_colon_stripped_once_in_event_name() -> None:
    assert decode(b"event:  add\ndata: x\n\n") == [Event(data="x", event=" add")]


def test_trailing_empty_data_line_keeps_its_lf() -> None:
    assert decode(b"data: a\ndata:\n\n") == [Event(data="a\n")]


def test_event_type_resets_after_dispatch_even_without_data() -> None:
    assert decode(b"event: add\ndata: 1\n\ndata: 2\n\nevent: x\n\ndata: 3\n\n") == [
        Event(data="1", event="add"),
        Event(data="2"),
        Event(data="3"),
    ]


# --- encoder round trips -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "decoded"),
    [
        ("", ""),
        ("x", "x"),
        ("\n", "\n"),
        ("\n\n\n", "\n\n\n"),
        ("\r\n", "\n"),  # §9.2.5: every line break reads back as LF
        ("a\rb", "a\nb"),
        ("a\r\nb\nc\rd\r", "a\nb\nc\nd\n"),
        ("\r\r\n\n", "\n\n\n"),
        ("  leading spaces", "  leading spaces"),
        (" ", " "),
        ("data: nested", "data: nested"),
        (": not a comment", ": not a comment"),
        ("\ufeffbom", "\ufeffbom"),
        (f"{EMOJI}\n日本語\n", f"{EMOJI}\n日本語\n"),
    ],
    ids=repr,
)
def test_encode_round_trip(data: str, decoded: str) -> None:
    encoded = encode(data)
    assert decode(encoded) == [Event(data=decoded)]
    chunks = [encoded[i : i + 1] for i in range(len(encoded))]
    assert decode(*chunks) == [Event(data=decoded)]


def test_encode_round_trip_with_event_and_id() -> None:
    events, decoder = decode_with([encode("x", event="delta", id=42), encode("y", id="abc def")])
    assert events == [Event(data="x", event="delta", id="42"), Event(data="y", id="abc def")]
    assert decoder.last_event_id == "abc def"


def test_encode_json_round_trip_with_escaped_newlines() -> None:
    payload = {"text": "line1\nline2\r\n\n", "n": 1, "emoji": EMOJI, "nested": {"a": [1, "\n"]}}
    encoded = encode_json(orjson.dumps(payload), "delta", 7)
    assert encoded.count(b"\n") == 4  # id, event, data, blank: the JSON adds no line
    events, decoder = decode_with([encoded])
    assert [(e.event, e.id) for e in events] == [("delta", "7")]
    assert json.loads(events[0].data) == payload
    assert decoder.last_event_id == "7"


# --- encoder refusals ----------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["a\nb", "a\rb", "a\r\nb", "\n", "a\0b"], ids=repr)
def test_encode_refuses_id_with_line_break_or_nul(bad_id: str) -> None:
    with pytest.raises(ValueError, match="id"):
        encode("x", id=bad_id)


@pytest.mark.parametrize("bad_event", ["a\nb", "a\rb", "a\r\nb"], ids=repr)
def test_encode_refuses_event_name_with_line_break(bad_event: str) -> None:
    with pytest.raises(ValueError, match="event name"):
        encode("x", event=bad_event)


def test_retry_refuses_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        retry(-1)


# --- comments, PING and retry() -------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [PING, comment(), comment("hello"), comment("a\ndata: b"), comment("x\r\ndata: y\rid: 9")],
    ids=repr,
)
def test_comments_and_ping_decode_to_no_events(frame: bytes) -> None:
    events, decoder = decode_with([encode("a", id=1), frame, encode("b")])
    assert events == [Event(data="a", id="1"), Event(data="b", id="1")]
    assert decoder.last_event_id == "1"


@pytest.mark.parametrize("ms", [0, 3000])
def test_retry_frame_sets_reconnection_time_without_an_event(ms: int) -> None:
    decoder = Decoder()
    assert decoder.feed(retry(ms)) == []
    assert decoder.retry == ms
    assert decoder.feed(encode("x")) == [Event(data="x", retry=ms)]
