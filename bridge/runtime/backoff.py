"""Exponential backoff with jitter: the one policy for every retry loop (REST requests, re-browse, poll groups).

Jitter spreads the retries of many bridges (or many poll groups) that failed at the same moment, so they do not
hit a recovering WinCC in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff", "backoff_delay"]

JITTER = 0.5  # each delay is the exponential step times a factor in [1 - JITTER, 1 + JITTER]


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, *, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """The wait before retry number `attempt` (1 = the first retry): base * 2**(attempt-1), jittered, at most cap."""
    step = base_s * (2 ** (max(1, attempt) - 1))
    return min(cap_s, step * uniform(1 - JITTER, 1 + JITTER))


@dataclass
class Backoff:
    """The state of one retry loop: `next()` after each failure gives the wait, `reset()` after a success."""

    base_s: float
    cap_s: float
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return backoff_delay(self.failures, self.base_s, self.cap_s, uniform=self.uniform)

    def reset(self) -> None:
        self.failures = 0
