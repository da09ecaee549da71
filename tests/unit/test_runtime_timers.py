"""The bridge's own timers in an idle process: the health endpoint's uvicorn loop ticks once a second and still stops
at once when asked; the loop-lag monitor sees a stall and keeps ticking, as a bare timer callback on any loop and
with no timer at all on a MeasuredLoop (read off the loop's own turns); periodic work wakes on a shared grid."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bridge.runtime import embedded_http
from bridge.runtime.clock import next_tick, seconds_to_tick, sleep_to_tick
from bridge.runtime.health import HealthServer, HealthSnapshot
from bridge.runtime.loop_lag import LAG_BOUNDS_MS, LoopLag, MeasuredLoop
from tests.fakes import FakeClock
from tests.helpers import free_port, wait_until


def _snapshot() -> HealthSnapshot:
    return HealthSnapshot(serving=True, address_space_built=True, wincc_connected=True, tags=3)


async def test_a_stop_wakes_the_slow_uvicorn_loop_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # a tick of a minute: a stop that waited for the next tick would run into the test's timeout
    monkeypatch.setattr(embedded_http, "TICK_S", 60.0)
    port = free_port()
    health = HealthServer(f"127.0.0.1:{port}", _snapshot)
    await health.start()
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/readyz")
    assert answer.status_code == 200 and answer.json()["tags"] == 3
    assert "date" in answer.headers  # uvicorn's per-second header work still runs on the slower tick
    task = health._task
    assert task is not None
    await asyncio.wait_for(health.stop(), timeout=10)
    assert task.done() and not task.cancelled()  # it returned by itself, not through stop()'s cancel fallback


async def test_the_lag_monitor_sees_a_stall_and_keeps_ticking() -> None:
    lag = LoopLag(period_s=0.01, stall_s=0.15)
    lag.start()
    try:
        await wait_until(lambda: lag.ticks >= 3, timeout=10, what="the first ticks")
        time.sleep(0.2)  # noqa: ASYNC251 - the event loop held on purpose, as a long synchronous step would
        await wait_until(lambda: lag.stalls == 1, timeout=10, what="the stall counted")
        assert lag.max_s >= 0.15
        seen = lag.ticks
        await wait_until(lambda: lag.ticks >= seen + 3, timeout=10, what="ticks after the stall")
        armed = lag._timer  # the next tick's handle: stop() must cancel it, or the monitor ticks on for ever
    finally:
        await lag.stop()
    assert armed is not None and armed.cancelled()


# ---- the lag monitor on a MeasuredLoop: the timer followed on paper, from the loop's own turns ----------------------


def test_ticks_due_while_the_loop_waited_count_with_no_lag() -> None:
    lag = LoopLag(period_s=0.1)
    lag._due, lag._woke = 0.1, 0.0
    lag.turn_ended(0.001, goes_on=False)  # a short turn, then a wait of almost a second
    lag.turn_began(0.95)
    lag.turn_ended(0.951, goes_on=False)
    assert lag.ticks == 9 and lag.max_s == 0.0  # 0.1 .. 0.9: each would have woken the loop and fired at once
    assert abs(lag._due - 1.0) < 1e-9  # the next one where the timer would be


def test_a_tick_due_in_a_long_turn_is_as_late_as_the_turn_ends() -> None:
    lag = LoopLag(period_s=0.1, stall_s=0.5)
    lag._due, lag._woke = 0.1, 0.0
    lag.turn_ended(0.02, goes_on=False)
    lag.turn_began(0.05)
    lag.turn_ended(0.75, goes_on=False)  # one step held the loop 0.7 s: the tick due at 0.1 fires at 0.75
    assert lag.ticks == 1 and abs(lag.max_s - 0.65) < 1e-9 and lag.stalls == 1
    assert abs(lag._due - 0.85) < 1e-9  # re-armed when it fired, as the timer is


def test_a_tick_due_in_a_turn_that_goes_straight_on_waits_for_the_next_turn() -> None:
    lag = LoopLag(period_s=0.1)
    lag._due, lag._woke = 0.1, 0.0
    lag.turn_ended(0.15, goes_on=True)  # due at 0.1; callbacks were ready, so the timer runs in the next turn
    assert lag.ticks == 0
    lag.turn_began(0.15)
    lag.turn_ended(0.33, goes_on=False)  # ... which ends at 0.33: at the latest then
    assert lag.ticks == 1 and abs(lag.max_s - 0.23) < 1e-9
    assert lag.over[LAG_BOUNDS_MS.index(100)] == 1 and lag.over[LAG_BOUNDS_MS.index(250)] == 0


def test_a_busy_loop_that_never_waits_still_fires_the_tick_in_the_next_turn() -> None:
    lag = LoopLag(period_s=0.1)
    lag._due, lag._woke = 0.1, 0.0
    lag.turn_ended(0.12, goes_on=True)  # due at 0.1 in this turn; the loop goes straight on
    lag.turn_began(0.12)
    lag.turn_ended(0.14, goes_on=True)  # ... and on again: the timer ran in this turn all the same
    assert lag.ticks == 1 and abs(lag.max_s - 0.04) < 1e-9 and abs(lag._due - 0.24) < 1e-9


def test_a_measured_loop_sees_a_stall_and_is_not_woken_by_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    turns: list[float] = []  # when each turn of the loop ended
    follow = LoopLag.turn_ended

    def counted(self: LoopLag, now: float, goes_on: bool) -> None:
        turns.append(now)
        follow(self, now, goes_on)

    monkeypatch.setattr(LoopLag, "turn_ended", counted)
    lag = LoopLag(period_s=0.05, stall_s=0.15)

    async def scenario() -> int:
        lag.start()
        try:
            await wait_until(lambda: lag.ticks >= 3, timeout=10, what="the monitor following the loop")
            before, ticks = len(turns), lag.ticks
            # the idle second under test (a span of time, not a wait for something): a timer would wake it 20 times
            await asyncio.sleep(1.0)
            idle_turns = len(turns) - before
            assert lag.ticks - ticks >= 18  # the ticks still count (as lag 0), read off the wait
            assert lag._timer is None  # no timer armed at all
            time.sleep(0.2)  # noqa: ASYNC251 - the event loop held on purpose, as a long synchronous step would
            await asyncio.sleep(0.01)  # the turn that held it ends here: the loop waits
            return idle_turns
        finally:
            await lag.stop()

    with asyncio.Runner(loop_factory=MeasuredLoop) as runner:
        idle_turns = runner.run(scenario())
    assert idle_turns <= 3  # the sleep's own wake-up (and its task's step), nothing from the monitor
    assert lag.stalls == 1 and lag.max_s >= 0.15


# ---- the grid the bridge's periodic work wakes on (bridge/runtime/clock.py) ------------------------------------------


@pytest.mark.parametrize(
    ("period", "after", "tick"),
    [(1.0, 1000.0, 1001.0), (0.2, 1000.6, 1000.8), (0.5, 3.2, 3.5), (5.0, 7.0, 10.0), (0.1, 0.3, 0.4)],
)
def test_next_tick_is_the_next_multiple_of_the_period(period: float, after: float, tick: float) -> None:
    assert next_tick(period, after) == pytest.approx(tick)


def test_periodic_work_lands_on_the_grid_and_never_ticks_twice_or_skips() -> None:
    assert seconds_to_tick(1.0, now=1000.3) == pytest.approx(0.7)  # first wait after a start off the grid
    assert seconds_to_tick(1.0, now=1000.7) == pytest.approx(1.3)  # not 0.3: no double tick right after a start
    assert seconds_to_tick(1.0, now=1001.8, since=1001.0) == pytest.approx(0.2)  # long work: the next tick still
    assert seconds_to_tick(1.0, now=1002.3, since=1001.0) == 0.0  # work longer than its period: on at once
    assert seconds_to_tick(0.5, now=1003.0) == pytest.approx(0.5) and seconds_to_tick(1.0, 1003.0) == pytest.approx(1)


async def test_poll_groups_of_dividing_periods_wake_together() -> None:
    clock = FakeClock(start=1000.37)
    woke: dict[float, list[float]] = {0.5: [], 1.0: []}

    async def periodic(period: float) -> None:
        while True:
            await sleep_to_tick(period, clock)
            woke[period].append(clock.monotonic())

    tasks = [asyncio.create_task(periodic(p)) for p in woke]
    try:
        await clock.run_until(lambda: len(woke[1.0]) >= 3)
    finally:
        for t in tasks:
            t.cancel()
    assert woke[1.0] == pytest.approx([1001.0, 1002.0, 1003.0])
    assert set(woke[1.0]) <= set(woke[0.5]) and woke[0.5][:3] == pytest.approx([1001.0, 1001.5, 1002.0])
