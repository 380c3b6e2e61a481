"""The /v1 translation (server/v1.py): tokenrelay events in, OpenAI chunks out."""

from __future__ import annotations

import json

import pytest

from tokenrelay.errors import TokenrelayError
from tokenrelay.server.v1 import CompletionBody, _refuse_unsupported, _Translator, _upstream_status


def _chunks(raw: bytes) -> list[object]:
    out: list[object] = []
    for block in raw.decode().split("\n\n"):
        if block:
            assert block.startswith("data: ")
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_a_stream_translates_to_openai_chunks_in_order() -> None:
    translator = _Translator("chatcmpl-1", 1700000000, "scripted", include_usage=True)
    raw = b"".join([
        translator.translate("start", {"stream_id": "st"}),
        translator.translate("delta", {"text": "Hel"}),
        translator.translate("delta", {"text": "lo"}),
        translator.translate("done", {"finish_reason": "stop",
                                      "usage": {"input_tokens": 3, "output_tokens": 2}}),
    ])
    chunks = _chunks(raw)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]  # type: ignore[index]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hel"},
                      {"content": "lo"}, {}]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []  # type: ignore[index]
    assert usage_chunk["usage"] == {"prompt_tokens": 3, "completion_tokens": 2,  # type: ignore[index]
                                    "total_tokens": 5}
    assert all(c["id"] == "chatcmpl-1" and c["object"] == "chat.completion.chunk"  # type: ignore[index]
               for c in chunks[:-1])


def test_without_include_usage_no_usage_chunk_is_sent() -> None:
    translator = _Translator("chatcmpl-1", 0, "m", include_usage=False)
    chunks = _chunks(translator.translate("done", {"finish_reason": "length"}))
    assert len(chunks) == 2 and chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["finish_reason"] == "length"  # type: ignore[index]


def test_an_error_event_becomes_an_openai_error_object() -> None:
    translator = _Translator("chatcmpl-1", 0, "m", include_usage=False)
    [chunk] = _chunks(translator.translate("error", {"code": "upstream_timeout",
                                                     "message": "slow"}))
    assert chunk == {"error": {"message": "slow", "type": "upstream_error", "param": None,
                               "code": "upstream_timeout"}}


def test_unknown_events_translate_to_nothing() -> None:
    assert _Translator("c", 0, "m", include_usage=False).translate("citation", {}) == b""


def test_reasoning_goes_out_under_both_field_names() -> None:
    [chunk] = _chunks(_Translator("c", 0, "m", include_usage=False).translate(
        "reasoning", {"text": "hmm"}))
    assert chunk["choices"][0]["delta"] == {"reasoning_content": "hmm",  # type: ignore[index]
                                            "reasoning": "hmm"}


def test_tool_call_pieces_go_out_as_openai_streams_them() -> None:
    translator = _Translator("c", 0, "m", include_usage=False)
    first, later = (_chunks(translator.translate("tool_call", data))[0] for data in (
        {"index": 1, "id": "call_9", "name": "get_weather", "arguments": '{"ci'},
        {"index": 1, "arguments": 'ty": "Oslo"}'}))
    assert first["choices"][0]["delta"] == {"tool_calls": [{  # type: ignore[index]
        "index": 1, "id": "call_9", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"ci'}}]}
    assert later["choices"][0]["delta"] == {"tool_calls": [{  # type: ignore[index]
        "index": 1, "function": {"arguments": 'ty": "Oslo"}'}}]}


@pytest.mark.parametrize("extra", [{"logprobs": True}, {"response_format": {"type": "json_object"}}])
def test_parameters_without_meaning_here_are_refused_by_name(extra: dict) -> None:
    body = CompletionBody(model="scripted", messages=[{"role": "user", "content": "x"}], **extra)
    with pytest.raises(TokenrelayError) as refused:
        _refuse_unsupported(body, dict(body.model_extra or {}))
    assert refused.value.code == "unsupported_parameter"
    assert next(iter(extra)) in refused.value.message


def test_a_plain_text_response_format_and_n_1_are_accepted() -> None:
    body = CompletionBody(model="scripted", messages=[{"role": "user", "content": "x"}], n=1,
                          response_format={"type": "text"})
    _refuse_unsupported(body, dict(body.model_extra or {}))


def test_upstream_codes_map_to_openai_statuses() -> None:
    assert _upstream_status("upstream_rate_limited") == 429
    assert _upstream_status("upstream_timeout") == 504
    assert _upstream_status("upstream_error") == 502
