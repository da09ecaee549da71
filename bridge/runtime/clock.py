"""The time a loop runs on: monotonic time and sleep, injectable so tests drive poll cycles on a virtual clock
instead of waiting (tests/fakes.py has FakeClock); and the grid periodic work wakes on.

Every wake-up of an idle process costs CPU (~0.2 ms on the bench's 2-core VMs, bench/README.md, "The lag monitor
without a timer"). The bridge's periodic work (poll groups, ServiceLevel, diagnostics, housekeeping, alarm
polling, the health endpoint's tick) therefore sleeps until the next multiple of its period on the monotonic clock
rather than for its period: work of the same or dividing periods falls due in the same turn of the event loop and
costs one wake-up.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "next_tick", "seconds_to_tick", "sleep_to_tick"]


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real one: time.monotonic and asyncio.sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def next_tick(period: float, after: float) -> float:
    """The first multiple of `period` later than `after` (a hair of tolerance: 1000.6 / 0.2 is 5002.999...)."""
    return (math.floor(after / period + 1e-9) + 1) * period


def seconds_to_tick(period: float, now: float, since: float | None = None) -> float:
    """How long to wait from `now` for the first multiple of `period` at least half a period after `since` (when
    the work just done began; default now): a first wait off the grid is neither a double tick nor a skipped one,
    and work that took longer than its period goes on at once (0)."""
    start = now if since is None else since
    return max(0.0, next_tick(period, start + period / 2) - now)


async def sleep_to_tick(period: float, clock: Clock = SYSTEM_CLOCK, since: float | None = None) -> None:
    await clock.sleep(seconds_to_tick(period, clock.monotonic(), since))
