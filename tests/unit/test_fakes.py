"""The shared test doubles are what they stand for: FakeWinCC is a complete WinCCClient (every member, the same
signatures), and FakeClock moves only when told to."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime

from bridge.runtime.clock import Clock
from bridge.wincc.client import WinCCClient
from bridge.wincc.errors import WinCCNotFound, WinCCRejected
from bridge.wincc.models import Alarm, AlarmState, DataType, Folder, TagInfo, WriteError
from tests.fakes import FakeClock, FakeWinCC, protocol_members
from tests.helpers import next_turn


def test_fake_wincc_is_a_complete_client() -> None:
    fake = FakeWinCC()
    assert isinstance(fake, WinCCClient)
    members = list(protocol_members(WinCCClient))
    assert {
        "browse",
        "read",
        "write",
        "active_alarms",
        "acknowledge",
        "alarm_history",
        "archive",
        "aclose",
        "dialect",
    } <= set(members)
    for name in members:
        assert hasattr(fake, name), f"FakeWinCC lacks {name}"
        wanted = getattr(WinCCClient, name, None)
        if not callable(wanted):
            continue
        have = getattr(FakeWinCC, name)
        assert list(inspect.signature(have).parameters) == list(inspect.signature(wanted).parameters), name
        assert inspect.iscoroutinefunction(have) == inspect.iscoroutinefunction(wanted) or (
            inspect.isasyncgenfunction(have) and not inspect.iscoroutinefunction(wanted)
        ), name


async def test_fake_wincc_behaves_as_the_protocol_says() -> None:
    tags = [TagInfo("P.A.x", DataType.double, ("P", "A"), "x", writable=True)]
    fake = FakeWinCC(tags)
    assert [i async for i in fake.browse()] == [Folder(("P",)), Folder(("P", "A")), tags[0]]
    fake.refuse["P.A.y"] = WriteError.not_found
    results = await fake.write({"P.A.x": 2.0, "P.A.y": 1})
    assert results["P.A.x"].ok and results["P.A.y"].error is WriteError.not_found
    assert (await fake.read(["P.A.x"]))["P.A.x"].value == 2.0
    fake.alarms = [Alarm("7", "high", AlarmState.came, False, datetime.now(UTC))]
    await fake.acknowledge("7", "seen", "op")
    for alarm_id, error in (("7", WinCCRejected), ("8", WinCCNotFound)):
        try:
            await fake.acknowledge(alarm_id, "", "op")
        except error:
            pass
        else:
            raise AssertionError(f"acknowledge {alarm_id} did not raise {error.__name__}")


async def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    assert isinstance(clock, Clock)
    woke: list[float] = []

    async def sleeper(s: float) -> None:
        await clock.sleep(s)
        woke.append(clock.monotonic())

    tasks = [asyncio.create_task(sleeper(s)) for s in (5.0, 1.0)]
    for _ in range(5):
        await next_turn()
    assert woke == [] and clock.sleepers == 2
    await clock.run_until(lambda: len(woke) == 2)
    assert woke == [1001.0, 1005.0]  # in deadline order, at their deadlines
    await asyncio.gather(*tasks)
