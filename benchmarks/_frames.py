"""Summarise a py-spy raw (collapsed) profile: the share of samples per function, by
itself (self) and with what it calls (inclusive). Used by benchmarks/profile.sh."""

from __future__ import annotations

import re
import sys
from collections import Counter

_FRAME = re.compile(r"(.*?) \((.*?):\d+\)")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group(2).split("site-packages/")[-1].split("src/")[-1]
    return f"{match.group(1)} ({path})"


def main(path: str, top: int = 25) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"--- {title}")
        for frame, n in counter.most_common(top):
            print(f"{n / total:6.1%}  {frame}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
