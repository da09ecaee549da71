"""HistoryService over an in-memory archive (a test double of the REST side) and an in-process server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from asyncua import ua

from bridge.config import HistoryConfig, Role
from bridge.opcua.history import HistoryService
from bridge.opcua.users import BridgeUser
from bridge.wincc.errors import WinCCUnreachable
from tests.unit.ua_rig import server_with_tags
from bridge.wincc.models import ArchiveValue, DataType, TagInfo

S = ua.StatusCodes
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = [TagInfo("A.Flow", DataType.double, ("A",), "Flow", archived=True),
        TagInfo("A.Dup", DataType.int32, ("A",), "Dup", archived=True),
        TagInfo("A.Broken", DataType.double, ("A",), "Broken", archived=True),
        TagInfo("A.Live", DataType.double, ("A",), "Live")]


class MemoryArchive:
    dialect = "memory"

    def __init__(self) -> None:
        self.series = {
            "A.Flow": [ArchiveValue(float(i), 0xC0, T0 + timedelta(seconds=i)) for i in range(100_000)],
            # three values share each timestamp: a page edge will fall between them
            "A.Dup": [ArchiveValue(i, 0xC0, T0 + timedelta(seconds=i // 3)) for i in range(3000)],
        }
        self.requests = 0

    async def archive(self, tag, start, end, page_size=1000) -> AsyncIterator[list[ArchiveValue]]:
        name = tag.name if isinstance(tag, TagInfo) else tag
        if name == "A.Broken":
            raise WinCCUnreachable("GET /api/history: ConnectError")
        values = [v for v in self.series[name] if start <= v.timestamp <= end]
        for i in range(0, len(values), page_size):
            self.requests += 1
            yield values[i : i + page_size]


@pytest.fixture
async def rig():
    server, d = await server_with_tags(TAGS)
    archive = MemoryArchive()
    service = HistoryService(server, d, archive, HistoryConfig(page_size=1000, max_continuation_points=10))
    await service.setup()
    return server, d, archive, service


def reader() -> SimpleNamespace:
    return SimpleNamespace(user=BridgeUser.named("r", Role.reader), session_id=ua.NodeId(1, 1))


def raw(start, end, n=0, bounds=False) -> ua.ReadRawModifiedDetails:
    return ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=n,
                                     ReturnBounds=bounds)


async def read_all(service, d, name, details, session=None) -> tuple[list[ua.DataValue], int]:
    session = session or reader()
    out, cp, calls = [], None, 0
    while True:
        params = ua.HistoryReadParameters(ReleaseContinuationPoints=False, HistoryReadDetails=details, TimestampsToReturn=ua.TimestampsToReturn.Both,
                                          NodesToRead=[ua.HistoryReadValueId(NodeId=d.node_id(name),
                                                                            ContinuationPoint=cp)])
        (res,) = await service.read(session, params)
        assert res.StatusCode.is_good(), res.StatusCode
        out += res.HistoryData.DataValues
        calls += 1
        cp = res.ContinuationPoint
        if not cp:
            return out, calls


async def test_100k_values_paged_by_1000_exactly_once(rig) -> None:
    server, d, archive, service = rig
    values, calls = await read_all(service, d, "A.Flow", raw(T0, T0 + timedelta(days=2), 1000))
    assert calls == 100
    assert [v.Value.Value for v in values] == [float(i) for i in range(100_000)]


async def test_equal_timestamps_survive_page_edges(rig) -> None:
    server, d, archive, service = rig
    values, _ = await read_all(service, d, "A.Dup", raw(T0, T0 + timedelta(hours=2), 7))
    assert [v.Value.Value for v in values] == list(range(3000))


async def test_reverse_order(rig) -> None:
    server, d, archive, service = rig
    values, _ = await read_all(service, d, "A.Flow", raw(T0 + timedelta(seconds=5000), T0 + timedelta(seconds=1000), 300))
    assert [v.Value.Value for v in values] == [float(i) for i in range(5000, 999, -1)]


async def test_bounds(rig) -> None:
    server, d, archive, service = rig
    start, end = T0 + timedelta(seconds=10.5), T0 + timedelta(seconds=13.5)
    values, _ = await read_all(service, d, "A.Flow", raw(start, end, 0, bounds=True))
    assert [v.Value.Value for v in values] == [10.0, 11.0, 12.0, 13.0, 14.0]
    before_all, _ = await read_all(service, d, "A.Flow", raw(T0 - timedelta(seconds=3), T0 + timedelta(seconds=1), 0, True))
    assert before_all[0].StatusCode.value == S.BadBoundNotFound


async def test_node_errors_are_per_node(rig) -> None:
    server, d, archive, service = rig
    nodes = [ua.HistoryReadValueId(NodeId=d.node_id(n)) for n in ("A.Flow", "A.Broken", "A.Live")]
    nodes.append(ua.HistoryReadValueId(NodeId=ua.NodeId("nope", d.tag_ns)))
    params = ua.HistoryReadParameters(ReleaseContinuationPoints=False, HistoryReadDetails=raw(T0, T0 + timedelta(seconds=9)),
                                      TimestampsToReturn=ua.TimestampsToReturn.Both, NodesToRead=nodes)
    codes = [r.StatusCode.value for r in await service.read(reader(), params)]
    assert codes == [S.Good, S.BadCommunicationError, S.BadHistoryOperationUnsupported, S.BadNodeIdUnknown]
    nobody = SimpleNamespace(user=BridgeUser.anonymous(None), session_id=ua.NodeId(2, 1))
    (denied, *_) = await service.read(nobody, params)
    assert denied.StatusCode.value == S.BadUserAccessDenied


async def test_processed_average_per_minute(rig) -> None:
    server, d, archive, service = rig
    details = ua.ReadProcessedDetails(StartTime=T0, EndTime=T0 + timedelta(minutes=3), ProcessingInterval=60_000,
                                      AggregateType=[ua.NodeId(ua.ObjectIds.AggregateFunction_Average)])
    params = ua.HistoryReadParameters(ReleaseContinuationPoints=False, HistoryReadDetails=details, TimestampsToReturn=ua.TimestampsToReturn.Source,
                                      NodesToRead=[ua.HistoryReadValueId(NodeId=d.node_id("A.Flow"))])
    (res,) = await service.read(reader(), params)
    # values 0..59 in the first minute: average 29.5, then 89.5, 149.5
    assert [dv.Value.Value for dv in res.HistoryData.DataValues] == [29.5, 89.5, 149.5]


async def test_at_time_interpolates(rig) -> None:
    server, d, archive, service = rig
    details = ua.ReadAtTimeDetails(ReqTimes=[T0 + timedelta(seconds=2), T0 + timedelta(seconds=2.5)],
                                   UseSimpleBounds=True)
    params = ua.HistoryReadParameters(ReleaseContinuationPoints=False, HistoryReadDetails=details, TimestampsToReturn=ua.TimestampsToReturn.Source,
                                      NodesToRead=[ua.HistoryReadValueId(NodeId=d.node_id("A.Flow"))])
    (res,) = await service.read(reader(), params)
    assert [dv.Value.Value for dv in res.HistoryData.DataValues] == [2.0, 2.5]


async def test_release_continuation_points(rig) -> None:
    server, d, archive, service = rig
    session = reader()
    params = ua.HistoryReadParameters(ReleaseContinuationPoints=False, HistoryReadDetails=raw(T0, T0 + timedelta(hours=1), 10),
                                      TimestampsToReturn=ua.TimestampsToReturn.Both,
                                      NodesToRead=[ua.HistoryReadValueId(NodeId=d.node_id("A.Flow"))])
    (res,) = await service.read(session, params)
    cp = res.ContinuationPoint
    release = ua.HistoryReadParameters(HistoryReadDetails=raw(T0, T0 + timedelta(hours=1), 10),
                                       ReleaseContinuationPoints=True,
                                       NodesToRead=[ua.HistoryReadValueId(NodeId=d.node_id("A.Flow"),
                                                                          ContinuationPoint=cp)])
    await service.read(session, release)
    params.NodesToRead[0].ContinuationPoint = cp
    (again,) = await service.read(session, params)
    assert again.StatusCode.value == S.BadContinuationPointInvalid
