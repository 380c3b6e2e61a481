"""The `<think>` splitter (providers/_think.py), at every split point of the tags."""

from __future__ import annotations

import pytest

from tokenrelay.events import ReasoningDelta, TextDelta
from tokenrelay.providers._think import ThinkSplitter

QWEN = "<think>\nThe user says hi; greet back.\n</think>\n\nHello! How can I help?"
R1 = "Hmm, a greeting.\n</think>\n\nHi there."


def _run(pieces: list[str], **kwargs: bool) -> tuple[str, str]:
    splitter = ThinkSplitter(**kwargs)
    out = [chunk for piece in pieces for chunk in splitter.feed(piece)] + splitter.flush()
    text = "".join(c.text for c in out if isinstance(c, TextDelta))
    reasoning = "".join(c.text for c in out if isinstance(c, ReasoningDelta))
    assert all(c.text for c in out)  # no empty deltas
    return text, reasoning


@pytest.mark.parametrize("cut", range(1, len(QWEN)))
def test_a_split_anywhere_gives_the_same_reasoning_and_text(cut: int) -> None:
    assert _run([QWEN[:cut], QWEN[cut:]]) == ("Hello! How can I help?",
                                              "\nThe user says hi; greet back.\n")


def test_one_character_at_a_time() -> None:
    assert _run(list(QWEN)) == ("Hello! How can I help?", "\nThe user says hi; greet back.\n")


@pytest.mark.parametrize("cut", range(1, len(R1)))
def test_a_template_that_opens_the_block_starts_inside(cut: int) -> None:
    assert _run([R1[:cut], R1[cut:]], inside=True) == ("Hi there.", "Hmm, a greeting.\n")


def test_text_without_tags_is_all_text() -> None:
    assert _run(["Hello ", "<b>world</b>"]) == ("Hello <b>world</b>", "")


def test_a_tag_after_the_text_has_begun_is_text() -> None:
    assert _run(["Use ", "<think>", " tags"]) == ("Use <think> tags", "")


def test_an_unfinished_tag_at_the_end_is_kept() -> None:
    assert _run(["Hello <thi"]) == ("Hello <thi", "")
    assert _run(["<think>still thinking </thi"]) == ("", "still thinking </thi")


class _Template:
    """What `_splitter` reads of a loaded model: its GGUF metadata."""

    def __init__(self, template: str) -> None:
        self.metadata = {"tokenizer.chat_template": template}


def test_the_local_provider_splits_only_for_templates_that_think() -> None:
    from tokenrelay.providers.local import _splitter

    assert _splitter(_Template("{{ '<|im_start|>assistant\\n' }}")) is None  # SmolLM2
    qwen3 = _splitter(_Template("... <think> ... {%- if add_generation_prompt %}"
                                "{{- '<|im_start|>assistant\\n' }}{%- endif %}"))
    assert qwen3 is not None
    assert [type(c) for c in qwen3.feed("<think>a</think>b")] == [ReasoningDelta, TextDelta]
    r1 = _splitter(_Template("... </think> ... {% if add_generation_prompt %}"
                             "{{'<｜Assistant｜><think>\\n'}}{% endif %}"))
    assert r1 is not None and [type(c) for c in r1.feed("a</think>b")] == [ReasoningDelta,
                                                                            TextDelta]
