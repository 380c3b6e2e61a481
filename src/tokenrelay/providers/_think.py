"""Reasoning written inline as `<think>…</think>` (Qwen3, the DeepSeek-R1 distills and
other models whose chat template emits it), split out of the text as it streams."""

from __future__ import annotations

from tokenrelay.events import ReasoningDelta, TextDelta

OPEN, CLOSE = "<think>", "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of `text` that begins `tag` (a tag cut in two)."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Feed the model's text pieces; get text and reasoning deltas, with either tag cut
    anywhere across pieces. An opening tag counts only before the answer's text begins;
    `inside` starts in reasoning (a template whose prompt already opened the block)."""

    def __init__(self, *, inside: bool = False) -> None:
        self._inside = inside
        self._decided = inside  # whether the text before any opening tag is known
        self._after_close = False
        self._pending = ""

    def feed(self, piece: str) -> list[TextDelta | ReasoningDelta]:
        out: list[TextDelta | ReasoningDelta] = []
        text, self._pending = self._pending + piece, ""
        while text:
            if self._inside:
                text = self._reasoning(text, out)
            elif not self._decided:
                text = self._opening(text)
            else:
                self._text(text, out)
                text = ""
        return out

    def flush(self) -> list[TextDelta | ReasoningDelta]:
        """What is held back at the end (a tag that never completed is text)."""
        held, self._pending = self._pending, ""
        if not held:
            return []
        return [ReasoningDelta(held)] if self._inside else [TextDelta(held)]

    def _reasoning(self, text: str, out: list[TextDelta | ReasoningDelta]) -> str:
        end = text.find(CLOSE)
        if end >= 0:
            if end:
                out.append(ReasoningDelta(text[:end]))
            self._inside, self._decided, self._after_close = False, True, True
            return text[end + len(CLOSE):]
        keep = _partial_suffix(text, CLOSE)
        if len(text) > keep:
            out.append(ReasoningDelta(text[:len(text) - keep]))
        self._pending = text[len(text) - keep:]
        return ""

    def _opening(self, text: str) -> str:
        stripped = text.lstrip()
        if stripped.startswith(OPEN):
            self._inside = self._decided = True
            return stripped[len(OPEN):]
        if OPEN.startswith(stripped):  # nothing yet, or a tag cut in two: wait
            self._pending = text
            return ""
        self._decided = True
        return text

    def _text(self, text: str, out: list[TextDelta | ReasoningDelta]) -> None:
        if self._after_close:  # the answer after `</think>\n\n` starts at its text
            text = text.lstrip("\n")
            if not text:
                return
            self._after_close = False
        out.append(TextDelta(text))
