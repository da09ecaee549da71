"""How late the event loop runs: the one number that tells whether the bridge keeps up.

Everything in the bridge (OPC UA sessions, polling, writes, history) shares one asyncio loop. When one piece of work
holds it too long, every other one waits; asyncua 2.1 clients even drop the connection when the server's answer to
their once-a-second ServerState probe takes longer than a second. The monitor is a timer every `period_s` and the
figure is how much later than asked it fires. Exported as gauges (worst lag in the last `window_s`, worst since
start) and a counter of stalls longer than `stall_s`, each stall logged once with its length; next to them the
longest garbage collection pause, the usual cause of a stall in a process holding millions of objects. Cumulative
counters of the timer's ticks and of the ticks later than each of a few bounds let a scraper compute a percentile
(p99) over any window of its own by differencing two scrapes (bench/ does).

A real timer ten times a second costs an idle process ~2 ms of CPU a second on the 2-core VMs the bench runs on
(each wake-up from idle ~0.2 ms), a third of an idle bridge's CPU (bench/README.md, "The lag monitor without a
timer"). On a `MeasuredLoop` (what the CLI runs the bridge on) the timer is therefore not armed but followed on
paper: the loop's selector reports when each turn begins (the wait returns) and ends (the next wait begins), and
ticks fall due as the timer's would (a period after the last one fired). A tick due while the loop waited would
have fired at once (lag 0, no wake-up needed to know it); a tick due while the loop was busy would have fired at
the end of that turn, or, when the loop went straight on to another turn (ready callbacks, a wait of 0), at the
latest at the end of that one. So the figure is the real timer's lag or a little more, never less. On any other
loop (tests, embedding) the timer is armed for real.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import selectors
import time
from collections import deque
from typing import Any

__all__ = ["LAG_BOUNDS_MS", "LoopLag", "MeasuredLoop"]

LAG_BOUNDS_MS = (5, 10, 20, 50, 100, 250, 500, 1000)  # exported as event_loop_lag_over_<ms>ms_total

log = logging.getLogger(__name__)


class LoopLag:
    def __init__(self, period_s: float = 0.1, window_s: float = 10.0, stall_s: float = 0.5) -> None:
        self._period = period_s
        self._window = window_s
        self._stall = stall_s
        self._recent: deque[tuple[float, float]] = deque()  # (when, lag) of lags worth keeping in the window
        self.max_s = 0.0
        self.stalls = 0
        self.ticks = 0
        self.over = [0] * len(LAG_BOUNDS_MS)  # ticks later than each bound
        self.gc_pause_max_s = 0.0  # the longest garbage collection: the usual suspect of a stall
        self.gc_pauses_total_s = 0.0
        self._gc_started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None  # the real timer, on a loop that is not a MeasuredLoop
        # the timer followed on paper, on a MeasuredLoop (see the module docstring)
        self._measured: MeasuredLoop | None = None
        self._due = 0.0  # when the next tick falls due
        self._woke = 0.0  # when the loop's current turn began (its wait returned)
        self._went_on = False  # the last turn ended with a wait of 0: the loop went straight on to this one

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            pause = time.perf_counter() - self._gc_started
            self.gc_pauses_total_s += pause
            self.gc_pause_max_s = max(self.gc_pause_max_s, pause)

    @property
    def recent_max_s(self) -> float:
        horizon = time.monotonic() - self._window
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        return max((lag for _, lag in self._recent), default=0.0)

    def metrics(self) -> dict[str, float]:
        return {
            "event_loop_lag_seconds": self.recent_max_s,
            "event_loop_lag_max_seconds": self.max_s,
            "event_loop_stalls_total": float(self.stalls),
            "gc_pause_max_seconds": self.gc_pause_max_s,
            "gc_pause_seconds_total": self.gc_pauses_total_s,
            "event_loop_ticks_total": float(self.ticks),
            **{f"event_loop_lag_over_{ms}ms_total": float(n) for ms, n in zip(LAG_BOUNDS_MS, self.over, strict=True)},
        }

    def observe(self, lag: float) -> None:
        now = time.monotonic()
        # keep the window's maximum cheaply: a lag smaller than a later one can never be the maximum again
        while self._recent and self._recent[-1][1] <= lag:
            self._recent.pop()
        self._recent.append((now, lag))
        self.max_s = max(self.max_s, lag)
        self.ticks += 1
        ms = lag * 1000
        for i, bound in enumerate(LAG_BOUNDS_MS):
            if ms <= bound:
                break
            self.over[i] += 1
        if lag >= self._stall:
            self.stalls += 1
            log.warning("event loop stalled for %.2f s (OPC UA requests and polling waited that long)", lag)

    def _arm(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self._period, self._tick)

    def _tick(self) -> None:
        # a bare timer callback, not a task sleeping in a loop: one loop turn per tick instead of two (the sleep's
        # future, then the task's step), the cheaper half of the monitor's cost in an idle bridge
        assert self._loop is not None and self._timer is not None
        try:
            self.observe(max(0.0, self._loop.time() - self._timer.when()))
        finally:
            self._arm()

    # ---- the timer followed on paper (called by MeasuredLoop's selector, with the time: tests feed their own)
    def turn_began(self, now: float) -> None:
        self._woke = now

    def turn_ended(self, now: float, goes_on: bool) -> None:
        """The loop's turn that began at `_woke` ends at `now`; `goes_on`: its next wait is 0 (work is ready)."""
        due = self._due
        if due < self._woke and not self._went_on:  # due while the loop waited: fired at once, re-armed
            n = int((self._woke - due) / self._period) + 1
            self.ticks += n  # lag 0: nothing to add to the window or the bounds
            due += n * self._period
        # Due before this turn began (the last one went straight on to it): the timer ran in this turn, so by now.
        # Due during this turn: it fires as the turn ends, unless the loop goes straight on to the next one.
        if due < now and (due < self._woke or not goes_on):
            self.observe(now - due)
            due = now + self._period
        self._due = due
        self._went_on = goes_on

    def start(self) -> None:
        if self._timer is not None or self._measured is not None:
            return
        gc.callbacks.append(self._on_gc)
        self._loop = loop = asyncio.get_running_loop()
        if isinstance(loop, MeasuredLoop):
            self._measured = loop
            now = time.monotonic()
            self._woke, self._due = now, now + self._period
            loop.watch(self)
        else:
            self._arm()

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._measured is not None:
            self._measured.watch(None)
            self._measured = None


class _TurnSelector(selectors.DefaultSelector):  # epoll on Linux
    """The loop's selector, telling a LoopLag when each wait begins (a turn ends) and returns (a turn begins)."""

    watcher: LoopLag | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        watcher = self.watcher
        if watcher is None:
            return super().select(timeout)
        watcher.turn_ended(time.monotonic(), timeout == 0)
        try:
            return super().select(timeout)
        finally:
            watcher.turn_began(time.monotonic())


class MeasuredLoop(asyncio.SelectorEventLoop):
    """The asyncio loop the CLI runs the bridge on (`asyncio.Runner(loop_factory=MeasuredLoop)`): a plain selector
    loop whose turns a LoopLag can follow, so that measuring the loop's lag does not wake an idle process."""

    def __init__(self) -> None:
        self._turns = _TurnSelector()
        super().__init__(self._turns)

    def watch(self, watcher: LoopLag | None) -> None:
        self._turns.watcher = watcher
