"""Sync engine against the in-memory WinCC of tests/fakes.py and an in-process asyncua server (server side only: no
client in this event loop), on a virtual clock: poll cycles and the overdue rule (a WinCC that stops answering) run
as fast as the code, no test waits real time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from asyncua import Server, ua

from bridge.config import SyncConfig
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.sync.engine import SyncEngine
from bridge.wincc.models import DataType, TagError, TagInfo, TagValue
from tests.fakes import FakeClock, FakeWinCC
from tests.unit.ua_rig import server_with_tags

S = ua.StatusCodes


TAGS = [
    TagInfo("Plant.A.Level", DataType.float, ("Plant", "A"), "Level", unit="m", low=0, high=10),
    TagInfo("Plant.A.Count", DataType.int16, ("Plant", "A"), "Count", writable=True),
    TagInfo("Plant.A.Run", DataType.bool, ("Plant", "A"), "Run"),
]


@pytest.fixture
async def rig():
    server, directory = await server_with_tags(TAGS)
    wincc = FakeWinCC(TAGS)
    clock = FakeClock()
    config = SyncConfig(interval_ms=50, poll_groups_ms=[50], idle_interval_ms=100, max_backoff_s=0.2)
    engine = SyncEngine(server, directory, wincc, config, clock=clock)
    await engine.start()
    yield server, directory, wincc, engine, clock
    await engine.stop()


def dv(server: Server, directory: TagDirectory, name: str) -> ua.DataValue:
    return server.iserver.aspace.read_attribute_value(directory.node_id(name), ua.AttributeIds.Value)


async def test_values_types_and_quality(rig) -> None:
    server, directory, wincc, engine, clock = rig
    wincc.set("Plant.A.Level", 4.5)
    wincc.set("Plant.A.Count", 7.0)  # WinCC sends 7.0 for an int: the node still gets Int16 7
    wincc.set("Plant.A.Run", True, 0x44)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 4.5)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 7)
    count = dv(server, directory, "Plant.A.Count")
    assert count.Value.VariantType == ua.VariantType.Int16 and count.StatusCode.is_good()
    run = await clock.run_until(lambda: (d := dv(server, directory, "Plant.A.Run")).StatusCode.value and d)
    assert run.StatusCode.value == S.UncertainLastUsableValue and run.Value.Value is True
    assert engine.connected


async def test_only_changes_are_written(rig) -> None:
    server, directory, wincc, engine, clock = rig
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").StatusCode.is_good())
    written = engine.metrics()["values_updated_total"]
    reads = wincc.reads
    await clock.run_until(lambda: wincc.reads >= reads + 5)
    assert engine.metrics()["values_updated_total"] == written
    wincc.set("Plant.A.Level", 1.25)
    await clock.run_until(lambda: engine.metrics()["values_updated_total"] == written + 1)


async def test_down_marks_bad_keeps_value_then_recovers(rig) -> None:
    server, directory, wincc, engine, clock = rig
    wincc.set("Plant.A.Level", 3.0)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 3.0)
    wincc.down = True
    bad = await clock.run_until(
        lambda: (d := dv(server, directory, "Plant.A.Level")).StatusCode.value == S.BadCommunicationError and d
    )
    assert bad.Value.Value == 3.0  # last value kept
    assert not engine.connected
    wincc.down = False
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").StatusCode.is_good())
    assert engine.connected


async def test_one_tag_error_leaves_the_others_good(rig) -> None:
    server, directory, wincc, engine, clock = rig
    wincc.missing.add("Plant.A.Run")
    wincc.set("Plant.A.Level", 2.0)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Run").StatusCode.value == S.BadConfigurationError)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 2.0)
    assert dv(server, directory, "Plant.A.Level").StatusCode.is_good()


async def test_note_written_shows_value_at_once(rig) -> None:
    server, directory, wincc, engine, clock = rig
    await engine.stop()  # slow polling, so only note_written can change the value within the test
    slow = SyncEngine(
        server,
        directory,
        wincc,
        SyncConfig(interval_ms=60_000, poll_groups_ms=[60_000], idle_interval_ms=60_000),
        clock=clock,
    )
    await slow.start()
    try:
        await clock.run_until(lambda: slow.metrics()["poll_cycles_total"] >= 1)
        reads = wincc.reads
        slow.note_written("Plant.A.Count", 12)
        await clock.run_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 12)
        assert wincc.reads == reads  # shown without a REST read
    finally:
        await slow.stop()


async def test_a_persistent_tag_error_is_published_once(rig) -> None:
    server, directory, wincc, engine, clock = rig
    wincc.missing.add("Plant.A.Run")
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Run").StatusCode.value == S.BadConfigurationError)
    written = engine.metrics()["values_updated_total"]
    reads = wincc.reads
    await clock.run_until(lambda: wincc.reads >= reads + 5)
    assert engine.metrics()["values_updated_total"] == written  # still Bad, nothing new to tell subscribers
    wincc.missing.clear()
    wincc.set("Plant.A.Run", True)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Run").StatusCode.is_good())


async def test_a_value_that_does_not_fit_the_declared_type_is_served_as_sent(
    rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Contract: a WinCC type that disagrees with the JSON type of the value must not fail: trust the JSON value and
    log the tag once. The node's DataType becomes BaseDataType so the value stays legal for clients."""
    server, directory, wincc, engine, clock = rig
    node = directory.node_id("Plant.A.Count")  # declared int16
    wincc.set("Plant.A.Count", "motor 3 off")
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == "motor 3 off")
    served = dv(server, directory, "Plant.A.Count")
    assert served.Value.VariantType == ua.VariantType.String and served.StatusCode.is_good()
    data_type = server.iserver.aspace.read_attribute_value(node, ua.AttributeIds.DataType).Value.Value
    assert data_type == ua.NodeId(ua.ObjectIds.BaseDataType)
    wincc.set("Plant.A.Count", 70000)  # too big for an int16: an Int64 as sent
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 70000)
    assert dv(server, directory, "Plant.A.Count").Value.VariantType == ua.VariantType.Int64
    wincc.set("Plant.A.Count", 12)  # fits again: the declared type
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 12)
    assert dv(server, directory, "Plant.A.Count").Value.VariantType == ua.VariantType.Int16
    lines = [r for r in caplog.records if "Plant.A.Count" in r.getMessage() and "declares" in r.getMessage()]
    assert len(lines) == 1


async def test_a_value_nobody_can_use_is_a_type_mismatch(rig) -> None:
    server, directory, wincc, engine, clock = rig
    wincc.set("Plant.A.Level", 4.0)
    await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 4.0)
    wincc.set("Plant.A.Level", {"unexpected": "object"})
    bad = await clock.run_until(
        lambda: (d := dv(server, directory, "Plant.A.Level")).StatusCode.value == S.BadTypeMismatch and d
    )
    assert bad.Value.Value == 4.0  # the last usable value stays


class StuckWinCC(FakeWinCC):
    """A WinCC that takes the request and then answers only when `answer` is set (a slow WinCC, attack finding 6)."""

    def __init__(self, tags: Sequence[TagInfo]) -> None:
        super().__init__(tags)
        self.answer = asyncio.Event()
        self.answer.set()

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        await self.answer.wait()
        return await super().read(names)


async def test_a_read_overdue_by_its_timeout_marks_the_tags_before_the_client_gives_up() -> None:
    server, directory = await server_with_tags(TAGS)
    wincc = StuckWinCC(TAGS)
    clock = FakeClock()
    config = SyncConfig(interval_ms=50, poll_groups_ms=[50], idle_interval_ms=100, max_backoff_s=0.2)
    engine = SyncEngine(server, directory, wincc, config, clock=clock, read_timeout_s=0.3)
    await engine.start()
    try:
        wincc.set("Plant.A.Level", 2.5)
        await clock.run_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 2.5)
        wincc.answer.clear()  # WinCC stops answering, without an error: only the timeout can tell
        stopped_at = clock.now
        await clock.run_until(
            lambda: dv(server, directory, "Plant.A.Level").StatusCode.value == S.BadCommunicationError,
            within_s=5,
            what="overdue tags marked",
        )
        # marked once the read timeout has passed, not before and not much later: the first read WinCC leaves
        # unanswered begins at the next cycle of the tags' poll group (unmonitored tags: the 100 ms idle group)
        assert 0.3 - 1e-6 <= clock.now - stopped_at <= 0.1 + 0.3 + 1e-6
        assert dv(server, directory, "Plant.A.Level").Value.Value == 2.5  # the last value, kept
        assert engine.metrics()["overdue_reads_total"] >= 1
        wincc.set("Plant.A.Level", 3.5)
        wincc.answer.set()  # the late answer applies
        await clock.run_until(
            lambda: (
                dv(server, directory, "Plant.A.Level").StatusCode.is_good()
                and dv(server, directory, "Plant.A.Level").Value.Value == 3.5
            ),
        )
    finally:
        await engine.stop()
