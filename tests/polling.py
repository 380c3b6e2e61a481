"""Waiting for what a test cannot order otherwise: poll a condition up to a deadline
(STYLE.md, Tests: no fixed sleeps to order events, no elapsed-time asserts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: seconds a test waits for what it polls: generous, so two busy cores cannot fail it
DEADLINE = 30.0


def until(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll `condition` until it returns something true, and return that; fail, saying
    `what` did not happen, after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not (value := condition()):
        assert time.monotonic() < end, f"not {what} within {deadline:.0f}s"
        time.sleep(0.05)
    return value
