"""Sync engine against an in-memory WinCC (a test double of the REST side) and an in-process asyncua server
(server side only: no client in this event loop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from asyncua import Server, ua

from bridge.config import SyncConfig
from bridge.opcua.sync.engine import SyncEngine
from bridge.opcua.model.tags import TagDirectory
from bridge.wincc.errors import WinCCUnreachable
from bridge.wincc.models import DataType, TagError, TagErrorKind, TagInfo, TagValue
from tests.helpers import wait_until
from tests.unit.ua_rig import server_with_tags

S = ua.StatusCodes


class MemoryWinCC:
    dialect = "memory"

    def __init__(self, tags: Sequence[TagInfo]) -> None:
        self.values: dict[str, tuple[Any, int, datetime]] = {t.name: (0, 0xC0, datetime.now(UTC)) for t in tags}
        self.down = False
        self.reads = 0
        self.missing: set[str] = set()

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        self.reads += 1
        if self.down:
            raise WinCCUnreachable("GET /x: ConnectError")
        out: dict[str, TagValue | TagError] = {}
        for n in names:
            if n in self.missing:
                out[n] = TagError(n, "not found", TagErrorKind.not_found)
            else:
                v, q, ts = self.values[n]
                out[n] = TagValue(n, v, q, ts)
        return out

    def set(self, name: str, value: Any, quality: int = 0xC0) -> None:
        self.values[name] = (value, quality, datetime.now(UTC))

    async def write(self, items: Mapping[str, Any]) -> dict:
        raise AssertionError("not used")


TAGS = [
    TagInfo("Plant.A.Level", DataType.float, ("Plant", "A"), "Level", unit="m", low=0, high=10),
    TagInfo("Plant.A.Count", DataType.int16, ("Plant", "A"), "Count", writable=True),
    TagInfo("Plant.A.Run", DataType.bool, ("Plant", "A"), "Run"),
]


@pytest.fixture
async def rig():
    server, directory = await server_with_tags(TAGS)
    wincc = MemoryWinCC(TAGS)
    config = SyncConfig(interval_ms=50, poll_groups_ms=[50], idle_interval_ms=100, max_backoff_s=0.2)
    engine = SyncEngine(server, directory, wincc, config)
    await engine.start()
    yield server, directory, wincc, engine
    await engine.stop()


def dv(server: Server, directory: TagDirectory, name: str) -> ua.DataValue:
    return server.iserver.aspace.read_attribute_value(directory.node_id(name), ua.AttributeIds.Value)


async def test_values_types_and_quality(rig) -> None:
    server, directory, wincc, engine = rig
    wincc.set("Plant.A.Level", 4.5)
    wincc.set("Plant.A.Count", 7.0)  # WinCC sends 7.0 for an int: the node still gets Int16 7
    wincc.set("Plant.A.Run", True, 0x44)
    await wait_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 4.5, timeout=5)
    await wait_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 7, timeout=5)
    count = dv(server, directory, "Plant.A.Count")
    assert count.Value.VariantType == ua.VariantType.Int16 and count.StatusCode.is_good()
    run = await wait_until(lambda: (d := dv(server, directory, "Plant.A.Run")).StatusCode.value and d, timeout=5)
    assert run.StatusCode.value == S.UncertainLastUsableValue and run.Value.Value is True
    assert engine.connected


async def test_only_changes_are_written(rig) -> None:
    server, directory, wincc, engine = rig
    await wait_until(lambda: dv(server, directory, "Plant.A.Level").StatusCode.is_good(), timeout=5)
    written = engine.metrics()["values_updated_total"]
    reads = wincc.reads
    await wait_until(lambda: wincc.reads >= reads + 5, timeout=5)
    assert engine.metrics()["values_updated_total"] == written
    wincc.set("Plant.A.Level", 1.25)
    await wait_until(lambda: engine.metrics()["values_updated_total"] == written + 1, timeout=5)


async def test_down_marks_bad_keeps_value_then_recovers(rig) -> None:
    server, directory, wincc, engine = rig
    wincc.set("Plant.A.Level", 3.0)
    await wait_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 3.0, timeout=5)
    wincc.down = True
    bad = await wait_until(lambda: (d := dv(server, directory, "Plant.A.Level")).StatusCode.value == S.BadCommunicationError
                           and d, timeout=5)
    assert bad.Value.Value == 3.0  # last value kept
    assert not engine.connected
    wincc.down = False
    await wait_until(lambda: dv(server, directory, "Plant.A.Level").StatusCode.is_good(), timeout=5)
    assert engine.connected


async def test_one_tag_error_leaves_the_others_good(rig) -> None:
    server, directory, wincc, engine = rig
    wincc.missing.add("Plant.A.Run")
    wincc.set("Plant.A.Level", 2.0)
    await wait_until(lambda: dv(server, directory, "Plant.A.Run").StatusCode.value == S.BadConfigurationError, timeout=5)
    await wait_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 2.0, timeout=5)
    assert dv(server, directory, "Plant.A.Level").StatusCode.is_good()


async def test_note_written_shows_value_at_once(rig) -> None:
    server, directory, wincc, engine = rig
    await engine.stop()  # slow polling, so only note_written can change the value within the test
    slow = SyncEngine(server, directory, wincc, SyncConfig(interval_ms=60_000, poll_groups_ms=[60_000],
                                                           idle_interval_ms=60_000))
    await slow.start()
    try:
        await wait_until(lambda: slow.metrics()["poll_cycles_total"] >= 1, timeout=5)
        reads = wincc.reads
        slow.note_written("Plant.A.Count", 12)
        await wait_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 12, timeout=2)
        assert wincc.reads == reads  # shown without a REST read
    finally:
        await slow.stop()


async def test_a_persistent_tag_error_is_published_once(rig) -> None:
    server, directory, wincc, engine = rig
    wincc.missing.add("Plant.A.Run")
    await wait_until(lambda: dv(server, directory, "Plant.A.Run").StatusCode.value == S.BadConfigurationError, timeout=5)
    written = engine.metrics()["values_updated_total"]
    reads = wincc.reads
    await wait_until(lambda: wincc.reads >= reads + 5, timeout=5)
    assert engine.metrics()["values_updated_total"] == written  # still Bad, nothing new to tell subscribers
    wincc.missing.clear()
    wincc.set("Plant.A.Run", True)
    await wait_until(lambda: dv(server, directory, "Plant.A.Run").StatusCode.is_good(), timeout=5)


async def test_a_value_that_does_not_fit_the_declared_type_is_served_as_sent(rig, caplog: pytest.LogCaptureFixture) -> None:
    """Contract: a WinCC type that disagrees with the JSON type of the value must not fail: trust the JSON value and
    log the tag once. The node's DataType becomes BaseDataType so the value stays legal for clients."""
    server, directory, wincc, engine = rig
    node = directory.node_id("Plant.A.Count")  # declared int16
    wincc.set("Plant.A.Count", "motor 3 off")
    await wait_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == "motor 3 off", timeout=5)
    served = dv(server, directory, "Plant.A.Count")
    assert served.Value.VariantType == ua.VariantType.String and served.StatusCode.is_good()
    data_type = server.iserver.aspace.read_attribute_value(node, ua.AttributeIds.DataType).Value.Value
    assert data_type == ua.NodeId(ua.ObjectIds.BaseDataType)
    wincc.set("Plant.A.Count", 70000)  # too big for an int16: an Int64 as sent
    await wait_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 70000, timeout=5)
    assert dv(server, directory, "Plant.A.Count").Value.VariantType == ua.VariantType.Int64
    wincc.set("Plant.A.Count", 12)  # fits again: the declared type
    await wait_until(lambda: dv(server, directory, "Plant.A.Count").Value.Value == 12, timeout=5)
    assert dv(server, directory, "Plant.A.Count").Value.VariantType == ua.VariantType.Int16
    lines = [r for r in caplog.records if "Plant.A.Count" in r.getMessage() and "declares" in r.getMessage()]
    assert len(lines) == 1


async def test_a_value_nobody_can_use_is_a_type_mismatch(rig) -> None:
    server, directory, wincc, engine = rig
    wincc.set("Plant.A.Level", 4.0)
    await wait_until(lambda: dv(server, directory, "Plant.A.Level").Value.Value == 4.0, timeout=5)
    wincc.set("Plant.A.Level", {"unexpected": "object"})
    bad = await wait_until(lambda: (d := dv(server, directory, "Plant.A.Level")).StatusCode.value == S.BadTypeMismatch
                           and d, timeout=5)
    assert bad.Value.Value == 4.0  # the last usable value stays
