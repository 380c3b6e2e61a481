"""The bundled model on everyday prompts, with default settings: does it stop by itself?

    .venv/bin/python -m benchmarks.prompts [--config default] [--limit N] [--write]

Runs each prompt of PROMPTS through the `local` provider itself (the class the server
uses, in this process: what a user of `tokenrelay serve` gets), one after another, each
with `seed` = its number so that a run can be repeated exactly, and reports:
- how many answers end by themselves (`finish_reason: stop`) and how many hit the
  token limit (`length`);
- the length of the answers in characters (median, 90th percentile, longest);
- how many repeat themselves: a line 4+ times, or a run of 8 words 4+ times (the loops
  issue 14 found: "A river of life, …" for 11,000 characters).

`--config before` pins the settings the provider had before issue 14 (llama-cpp-python's
own defaults: no repetition penalty, temperature 0.2, no stop strings) with a ceiling of
1,024 tokens so that a loop ends (before, only the 4,096-token context ended it).
`--write` adds the section to benchmarks/RESULTS.md (one per config, replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

#: everyday prompts a new user types first (the README's own among them)
PROMPTS = [
    "hi", "hello!", "Thanks!", "Who are you?", "What can you do?",
    "Write a haiku about rivers", "Write a short poem about the sea.",
    "Tell me a joke.", "Explain what an API is in two sentences.",
    "What is the capital of France?", "Give me three tips for better sleep.",
    "List five fruits.", "Count from 1 to 10.", "What is 12 times 7?",
    "Translate 'good morning' into Spanish.", "Summarize the plot of Cinderella.",
    "Write a Python function that reverses a string.",
    "How do I make a cup of tea?", "What's the difference between weather and climate?",
    "Suggest a name for a black cat.", "Why is the sky blue?",
    "Write a two-line birthday message for my friend Sam.",
    "What should I cook for dinner tonight?", "Explain recursion to a child.",
    "Give me a motivational quote.", "What are the primary colors?",
    "Describe a sunset in one paragraph.", "How many days are in a leap year?",
    "Write a short email asking my boss for a day off.",
    "What is photosynthesis?", "Name three planets in our solar system.",
    "Tell me a fun fact about octopuses.", "How do I center a div in CSS?",
    "What is the boiling point of water?", "Recommend a book for a long flight.",
    "Write a limerick about a cat.",
]

#: the settings before issue 14: llama-cpp-python's defaults, a ceiling so loops end
BEFORE: dict[str, Any] = {
    "options": {"repeat_penalty": 1.0, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "stop": []},
    "temperature": 0.2, "max_tokens": 1024}
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "before": BEFORE,
    # the candidates the defaults were chosen from (benchmarks/RESULTS.md)
    "penalty-1.15-t0.6": {"options": {"repeat_penalty": 1.15}, "temperature": 0.6},
    "penalty-1.25-t0.6": {"options": {"repeat_penalty": 1.25}, "temperature": 0.6},
}


def repeats(text: str) -> bool:
    """A line 4+ times, or a run of 8 words 4+ times."""
    lines = Counter(line.strip() for line in text.splitlines() if len(line.strip()) > 3)
    if lines and max(lines.values()) >= 4:
        return True
    words = re.findall(r"\w+", text.lower())
    runs = Counter(tuple(words[i:i + 8]) for i in range(len(words) - 7))
    return bool(runs) and max(runs.values()) >= 4


@dataclass
class Answer:
    prompt: str
    text: str
    finish: str
    tokens: int
    input_tokens: int | None
    seconds: float


async def _answer(provider: Any, n: int, prompt: str, config: dict[str, Any]) -> Answer:
    from tokenrelay.events import Finish, TextDelta, Usage
    from tokenrelay.messages import Message
    from tokenrelay.providers import ChatRequest
    from tokenrelay.providers.local import LocalOptions

    options = LocalOptions.model_validate({"seed": n, **config.get("options", {})})
    request = ChatRequest("", (Message("user", prompt),), max_tokens=config.get("max_tokens"),
                          temperature=config.get("temperature"), options=options)
    parts, finish, tokens, input_tokens = [], "?", 0, None
    began = time.perf_counter()
    async for chunk in provider.stream(request):
        if isinstance(chunk, TextDelta):
            parts.append(chunk.text)
        elif isinstance(chunk, Usage):
            tokens, input_tokens = chunk.output_tokens or 0, chunk.input_tokens
        elif isinstance(chunk, Finish):
            finish = chunk.reason
    return Answer(prompt, "".join(parts), finish, tokens, input_tokens,
                  time.perf_counter() - began)


async def run(config: dict[str, Any], limit: int | None) -> list[Answer]:
    from tokenrelay.providers.local import LocalProvider

    provider = LocalProvider()
    answers = []
    try:
        for n, prompt in enumerate(PROMPTS[:limit]):
            answer = await _answer(provider, n, prompt, config)
            flag = " REPEATS" if repeats(answer.text) else ""
            print(f"  {n + 1:2}. {answer.finish:6} {answer.tokens:5} tokens "
                  f"{len(answer.text):6} chars{flag}  {prompt[:50]}", flush=True)
            answers.append(answer)
    finally:
        await provider.aclose()
    return answers


def summary(name: str, answers: list[Answer]) -> list[str]:
    lengths = sorted(len(a.text) for a in answers)
    ended = sum(a.finish == "stop" for a in answers)
    looping = [a.prompt for a in answers if repeats(a.text)]
    p90 = lengths[min(len(lengths) - 1, int(len(lengths) * 0.9))]
    return [
        f"| {name} | {len(answers)} | {ended} | {sum(a.finish == 'length' for a in answers)} | "
        f"{len(looping)} | {statistics.median(lengths):,.0f} / {p90:,} / {lengths[-1]:,} | "
        f"{statistics.median(a.tokens for a in answers):,.0f} | "
        f"{sum(a.seconds for a in answers):,.0f} s |",
        *(f"  - repeats: {prompt!r}" for prompt in looping),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prompts",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="default", choices=sorted(CONFIGS))
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--answers", type=Path, default=None, metavar="FILE",
                        help="write every answer (prompt, text, finish, tokens) to FILE as JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    print(f"{len(PROMPTS[:args.limit])} prompts, config {args.config}", flush=True)
    answers = asyncio.run(run(CONFIGS[args.config], args.limit))
    if args.answers is not None:
        args.answers.write_text(json.dumps([vars(a) for a in answers], indent=1,
                                           ensure_ascii=False))
    print("| config | prompts | ended by themselves | hit the limit | repeat themselves | "
          "characters p50 / p90 / max | tokens p50 | time |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    print("\n".join(summary(args.config, answers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
