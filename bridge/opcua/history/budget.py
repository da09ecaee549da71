"""The archive work one node's HistoryRead answer may do (see service.py: "Work per answer").

Each node of a request is answered in its own task (asyncio.gather), so a context variable gives each its own
budget without passing it through every archive helper.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["TooMuchWork", "Work", "current_work", "out_of_budget"]


class TooMuchWork(Exception):
    """One node's answer needed more archive work than twice its budget without a point to resume from."""


@dataclass
class Work:
    """The archive work one node's answer may do: `requests` REST requests until `deadline` (monotonic), after
    which a read stops where it can resume; `hard` requests or twice the time without such a point: refused."""

    requests: int
    hard: int
    seconds: float
    deadline: float
    spent: int = 0

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.requests or time.monotonic() >= self.deadline

    def spend(self, strict: bool = True) -> None:
        """Count one archive request; `strict`: refuse it (TooMuchWork) past the hard limit."""
        if strict and (self.spent >= self.hard or time.monotonic() >= self.deadline + self.seconds):
            raise TooMuchWork
        self.spent += 1


current_work: ContextVar[Work | None] = ContextVar("history_work", default=None)


def out_of_budget() -> bool:
    """Whether the node being answered has spent its budget (a read should stop where it can resume)."""
    work = current_work.get()
    return work is not None and work.exhausted
