"""The bridge's own timers in an idle process: the health endpoint's uvicorn loop ticks once a second and still stops
at once when asked, and the loop-lag monitor (a bare timer callback) still sees a stall and keeps ticking."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bridge.runtime import embedded_http
from bridge.runtime.health import HealthServer, HealthSnapshot
from bridge.runtime.loop_lag import LoopLag
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
