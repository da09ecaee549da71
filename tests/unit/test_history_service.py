"""HistoryService in an in-process server: over an in-memory archive (a stand-in for the REST side's archive()
contract) and, end to end, over the real dp REST client against respx."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
import pytest_asyncio
import respx
from asyncua import ua

from bridge.config import HistoryConfig, Role, WinCCConfig
from bridge.opcua.history.aggregates import CALCULATED, PARTIAL
from bridge.opcua.history.service import HistoryService
from bridge.opcua.security.users import BridgeUser
from bridge.wincc import open_client
from bridge.wincc.models import ArchiveValue, DataType, TagInfo
from bridge.wincc.parse import format_ts, parse_ts
from tests.fakes import FakeWinCC
from tests.helpers import OtherTask, wait_until
from tests.unit.ua_rig import server_with_tags

S = ua.StatusCodes
O = ua.ObjectIds
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NONE = None  # an unspecified StartTime / EndTime


def s(x: float) -> datetime:
    return T0 + timedelta(seconds=x)


def _series() -> dict[str, list[ArchiveValue]]:
    mixed_quality = {5: 0x00, 7: 0x40}  # one Bad, one Uncertain value
    return {
        "A.Flow": [ArchiveValue(float(i), 0xC0, s(i)) for i in range(100_000)],
        # three values share each timestamp: a page edge will fall between them
        "A.Dup": [ArchiveValue(i, 0xC0, s(i // 3)) for i in range(3000)],
        # 1 kHz for 100 s: a reverse window sized by time alone would hold all of it
        "A.Dense": [ArchiveValue(float(i), 0xC0, s(i / 1000)) for i in range(100_000)],
        "A.Sparse": [ArchiveValue(float(i), 0xC0, s(i * 86_400)) for i in range(30)],
        "A.Mixed": [ArchiveValue(float(i), mixed_quality.get(i, 0xC0), s(i)) for i in range(10)],
        "A.Flaky": [ArchiveValue(float(i), 0xC0, s(i)) for i in range(5000)],
        **{f"A.C{k}": [ArchiveValue(float(i), 0xC0, s(i)) for i in range(10)] for k in range(5)},
    }


TAGS = [
    TagInfo(n, DataType.int32 if n == "A.Dup" else DataType.double, ("A",), n[2:], archived=True) for n in _series()
]
TAGS += [
    TagInfo("A.Broken", DataType.double, ("A",), "Broken", archived=True),
    TagInfo("A.Live", DataType.double, ("A",), "Live"),
    TagInfo("R.Dup", DataType.int32, ("R",), "Dup", archived=True),
    TagInfo("R.Down", DataType.int32, ("R",), "Down", archived=True),
]
SERIES = _series()
TIMES = {k: [v.timestamp for v in vs] for k, vs in SERIES.items()}

# one server for the module (building one takes seconds); every test gets its own archive and service
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stage():
    return await server_with_tags(TAGS)


def memory_archive() -> FakeWinCC:
    """The in-memory WinCC with this module's archive series ("A.Broken" fails at once, "A.Flaky" after a page)."""
    archive = FakeWinCC(TAGS, series=SERIES, series_times=TIMES)
    archive.broken, archive.flaky = {"A.Broken"}, {"A.Flaky"}
    return archive


async def make_rig(stage, **config):
    server, d = stage
    archive = memory_archive()
    # no time budget here: answers that count pages must not depend on how busy the machine is
    service = HistoryService(
        server,
        d,
        archive,
        HistoryConfig(**{"page_size": 1000, "max_continuation_points": 10, "max_read_s": 600, **config}),
    )
    await service.setup()
    return server, d, archive, service


@pytest_asyncio.fixture(loop_scope="module")
async def rig(stage):
    return await make_rig(stage)


def reader(n: int = 1) -> SimpleNamespace:
    return SimpleNamespace(user=BridgeUser.named("r", Role.reader), session_id=ua.NodeId(n, 1))


def raw(start, end, n=0, bounds=False) -> ua.ReadRawModifiedDetails:
    return ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=n, ReturnBounds=bounds
    )


def processed(
    start, end, interval_ms, aggregate, config: ua.AggregateConfiguration | None = None
) -> ua.ReadProcessedDetails:
    details = ua.ReadProcessedDetails(
        StartTime=start, EndTime=end, ProcessingInterval=interval_ms, AggregateType=[ua.NodeId(aggregate)]
    )
    if config is not None:
        details.AggregateConfiguration = config
    return details


def params(details, names, d, cp=None) -> ua.HistoryReadParameters:
    return ua.HistoryReadParameters(
        ReleaseContinuationPoints=False,
        HistoryReadDetails=details,
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        NodesToRead=[ua.HistoryReadValueId(NodeId=d.node_id(n), ContinuationPoint=cp) for n in names],
    )


async def read_one(service, d, name, details, session=None, cp=None) -> ua.HistoryReadResult:
    (res,) = await service.read(session or reader(), params(details, [name], d, cp))
    return res


async def read_all(service, d, name, details, session=None) -> tuple[list[ua.DataValue], int]:
    session = session or reader()
    out, cp, calls = [], None, 0
    while True:
        res = await read_one(service, d, name, details, session, cp)
        assert res.StatusCode.is_good(), res.StatusCode
        out += res.HistoryData.DataValues
        calls += 1
        cp = res.ContinuationPoint
        if not cp:
            return out, calls
        assert calls < 10_000


def vals(dvs: list[ua.DataValue]) -> list:
    return [v.Value.Value if v.StatusCode.is_good() else v.StatusCode.value for v in dvs]


# ---- raw: paging and continuation points ----------------------------------------------------------------------
async def test_100k_values_paged_by_1000_exactly_once(rig) -> None:
    server, d, archive, service = rig
    values, calls = await read_all(service, d, "A.Flow", raw(T0, T0 + timedelta(days=2), 1000))
    assert calls == 100
    assert [v.Value.Value for v in values] == [float(i) for i in range(100_000)]


async def test_equal_timestamps_survive_page_edges(rig) -> None:
    server, d, archive, service = rig
    values, _ = await read_all(service, d, "A.Dup", raw(T0, T0 + timedelta(hours=2), 7))
    assert [v.Value.Value for v in values] == list(range(3000))


async def test_read_without_num_values_is_capped_with_a_continuation_point(stage) -> None:
    server, d, archive, service = await make_rig(stage, max_values_per_read=2500)
    first = await read_one(service, d, "A.Flow", raw(T0, T0 + timedelta(days=2)))
    assert len(first.HistoryData.DataValues) == 2500 and first.ContinuationPoint
    values, calls = await read_all(service, d, "A.Flow", raw(T0, T0 + timedelta(days=2)))
    assert calls == 40 and [v.Value.Value for v in values] == [float(i) for i in range(100_000)]
    # NumValuesPerNode above the cap is capped too; the cap is what MaxReturnDataValues says
    big = await read_one(service, d, "A.Flow", raw(T0, T0 + timedelta(days=2), 5000))
    assert len(big.HistoryData.DataValues) == 2500 and big.ContinuationPoint
    node = server.get_node(ua.NodeId(O.HistoryServerCapabilities_MaxReturnDataValues))
    assert await node.read_value() == 2500


# ---- raw: time domain and bounds (OPC 10000-11 4.4 Table 1, 6.5.3.2) -------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "n", "bounds", "expected"),
    [
        (s(10), s(13), 0, False, [10.0, 11.0, 12.0]),  # EndTime is not in the time domain
        (s(10), s(13), 0, True, [10.0, 11.0, 12.0, 13.0]),  # ... but the value there is the end bound
        (s(10.5), s(13.5), 0, False, [11.0, 12.0, 13.0]),
        (s(10.5), s(13.5), 0, True, [10.0, 11.0, 12.0, 13.0, 14.0]),
        (s(13), s(10), 0, False, [13.0, 12.0, 11.0]),  # reverse: StartTime included, EndTime not
        (s(13), s(10), 0, True, [13.0, 12.0, 11.0, 10.0]),
        (s(13.5), s(10.5), 0, False, [13.0, 12.0, 11.0]),
        (s(13.5), s(10.5), 0, True, [14.0, 13.0, 12.0, 11.0, 10.0]),
        (s(5), s(5), 0, False, [5.0]),  # StartTime == EndTime: the value at that instant
        (s(5), s(5), 0, True, [5.0]),
        (s(5.5), s(5.5), 0, True, [5.0, 6.0]),
        (s(10), NONE, 3, False, [10.0, 11.0, 12.0]),  # only StartTime: forward from it
        (s(10.5), NONE, 3, True, [10.0, 11.0, 12.0]),  # the start bound counts towards NumValuesPerNode
        (NONE, s(10), 3, False, [9.0, 8.0, 7.0]),  # only EndTime: backward from just before it
        (NONE, s(10), 3, True, [10.0, 9.0, 8.0]),
        (s(2), s(-5), 0, True, [2.0, 1.0, 0.0, S.BadBoundNotFound]),  # no bound before the data: LAST
        (s(-3), s(1), 0, True, [S.BadBoundNotFound, 0.0, 1.0]),  # ... and FIRST
    ],
)
async def test_time_domain_and_bounds(rig, start, end, n, bounds, expected) -> None:
    server, d, archive, service = rig
    res = await read_one(service, d, "A.Flow", raw(start, end, n, bounds))
    assert vals(res.HistoryData.DataValues) == expected
    assert res.ContinuationPoint is None  # one time and NumValuesPerNode: those values are the whole answer


async def test_nothing_in_range_is_good_no_data(rig) -> None:
    server, d, archive, service = rig
    res = await read_one(service, d, "A.Flow", raw(s(5.5), s(5.5)))
    assert res.StatusCode.value == S.GoodNoData and res.HistoryData.DataValues == []


async def test_end_bound_never_exceeds_num_values(rig) -> None:
    server, d, archive, service = rig
    values, calls = await read_all(service, d, "A.Flow", raw(s(10), s(13), 3, bounds=True))
    assert vals(values) == [10.0, 11.0, 12.0, 13.0] and calls == 2


async def test_reverse_order(rig) -> None:
    server, d, archive, service = rig
    values, _ = await read_all(service, d, "A.Flow", raw(s(5000), s(1000), 300))
    assert [v.Value.Value for v in values] == [float(i) for i in range(5000, 1000, -1)]


async def test_reverse_with_equal_timestamps(rig) -> None:
    server, d, archive, service = rig
    values, calls = await read_all(service, d, "A.Dup", raw(s(1000), s(-1), 7))
    assert [v.Value.Value for v in values] == list(range(2999, -1, -1))
    assert calls == -(-3000 // 7)
    # a reverse page edge inside a group of equal timestamps, with bounds at both ends
    values, _ = await read_all(service, d, "A.Dup", raw(s(10.5), s(8.5), 2, bounds=True))
    # start bound: the first value after 10.5 (33, at 11 s); end bound: the last one at or before 8.5 (26, at 8 s)
    assert [v.Value.Value for v in values] == [33, 32, 31, 30, 29, 28, 27, 26]


async def test_reverse_window_is_bounded_by_values_not_time(rig) -> None:
    server, d, archive, service = rig
    res = await read_one(service, d, "A.Dense", raw(s(101), s(0), 10))
    assert vals(res.HistoryData.DataValues) == [float(i) for i in range(99_999, 99_989, -1)]
    # a window one minute wide would hold 60,000 values (and one hour, as before, all 100,000): it is given up
    # after its first page and narrowed to the data density, so only a few pages are read
    assert archive.handed_out <= 5 * 1000, archive.handed_out
    # walking back through everything still hands out each value about once, newest first
    archive.handed_out = 0
    values, _ = await read_all(service, d, "A.Dense", raw(s(101), s(-1), 7000))
    assert [v.Value.Value for v in values] == [float(i) for i in range(99_999, -1, -1)]
    assert archive.handed_out <= 3 * 100_000, archive.handed_out


async def test_reverse_window_grows_over_sparse_data(rig) -> None:
    server, d, archive, service = rig
    values, _ = await read_all(service, d, "A.Sparse", raw(NONE, s(40 * 86_400), 30))
    assert [v.Value.Value for v in values] == [float(i) for i in range(29, -1, -1)]
    assert archive.requests < 60


async def test_release_continuation_points(rig) -> None:
    server, d, archive, service = rig
    session = reader()
    res = await read_one(service, d, "A.Flow", raw(T0, T0 + timedelta(hours=1), 10), session)
    cp = res.ContinuationPoint
    release = params(raw(T0, T0 + timedelta(hours=1), 10), ["A.Flow"], d, cp)
    release.ReleaseContinuationPoints = True
    await service.read(session, release)
    again = await read_one(service, d, "A.Flow", raw(T0, T0 + timedelta(hours=1), 10), session, cp)
    assert again.StatusCode.value == S.BadContinuationPointInvalid


# ---- processed and at-time -------------------------------------------------------------------------------------
async def test_processed_average_per_minute(rig) -> None:
    server, d, archive, service = rig
    res = await read_one(service, d, "A.Flow", processed(T0, s(180), 60_000, O.AggregateFunction_Average))
    # values 0..59 in the first minute: average 29.5, then 89.5, 149.5
    assert [dv.Value.Value for dv in res.HistoryData.DataValues] == [29.5, 89.5, 149.5]


async def test_processed_reverse_starts_at_start_time(rig) -> None:
    server, d, archive, service = rig
    # (110, 170] holds 111..170, (50, 110] 51..110, and the short interval (0, 50] 1..50 comes last
    res = await read_one(service, d, "A.Flow", processed(s(170), s(0), 60_000, O.AggregateFunction_Average))
    dvs = res.HistoryData.DataValues
    assert [dv.Value.Value for dv in dvs] == [140.5, 80.5, 25.5]
    assert [dv.SourceTimestamp for dv in dvs] == [s(170), s(110), s(50)]
    counts = (
        await read_one(service, d, "A.Flow", processed(s(170), s(0), 60_000, O.AggregateFunction_Count))
    ).HistoryData.DataValues
    assert [dv.Value.Value for dv in counts] == [60, 60, 50]
    assert [dv.StatusCode.value & 0x1F for dv in counts] == [CALCULATED, CALCULATED, CALCULATED | PARTIAL]


async def test_long_processed_read_lets_the_event_loop_run(stage) -> None:
    server, d, archive, service = await make_rig(stage, max_requests_per_read=1000)  # all 100 pages in one answer
    async with OtherTask() as other:
        # 100 pages of the in-memory archive, which never waits for anything itself
        res = await read_one(service, d, "A.Flow", processed(T0, s(100_000), 60_000, O.AggregateFunction_TimeAverage))
    assert len(res.HistoryData.DataValues) == -(-100_000 // 60)
    assert other.turns >= 50  # the server kept answering others between pages


async def test_processed_pages_intervals_with_continuation_points(stage) -> None:
    server, d, archive, service = await make_rig(stage, max_values_per_read=2)
    values, calls = await read_all(service, d, "A.Flow", processed(T0, s(300), 60_000, O.AggregateFunction_Average))
    assert [dv.Value.Value for dv in values] == [29.5, 89.5, 149.5, 209.5, 269.5] and calls == 3
    backwards, _ = await read_all(service, d, "A.Flow", processed(s(300), T0, 60_000, O.AggregateFunction_Count))
    assert [dv.SourceTimestamp for dv in backwards] == [s(300), s(240), s(180), s(120), s(60)]


async def test_processed_honours_the_aggregate_configuration(rig) -> None:
    server, d, archive, service = rig
    # A.Mixed over [0, 10): 8 Good values (0..9 but 5 Bad and 7 Uncertain); Uncertain counts as Bad by default
    default = (
        await read_one(service, d, "A.Mixed", processed(s(0), s(10), 0, O.AggregateFunction_Average))
    ).HistoryData.DataValues[0]
    assert default.StatusCode.value & 0xFFFF0000 == S.UncertainDataSubNormal
    assert default.Value.Value == pytest.approx((45 - 5 - 7) / 8)
    own = ua.AggregateConfiguration(
        UseServerCapabilitiesDefaults=False,
        TreatUncertainAsBad=False,
        PercentDataBad=100,
        PercentDataGood=90,
        UseSlopedExtrapolation=False,
    )
    mine = (
        await read_one(service, d, "A.Mixed", processed(s(0), s(10), 0, O.AggregateFunction_Average, own))
    ).HistoryData.DataValues[0]
    # the Uncertain 7 is used; 9 of 10 usable reaches PercentDataGood=90, but an Uncertain value was used
    assert mine.Value.Value == pytest.approx((45 - 5) / 9)
    assert mine.StatusCode.value & 0xFFFF0000 == S.UncertainDataSubNormal
    own.TreatUncertainAsBad = True
    own.PercentDataGood = 80
    good = (
        await read_one(service, d, "A.Mixed", processed(s(0), s(10), 0, O.AggregateFunction_Average, own))
    ).HistoryData.DataValues[0]
    assert good.StatusCode.value & 0xFFFF0000 == S.Good  # 8 of 10 usable >= 80 %
    # the server defaults are ignored unless asked for: the same details with UseServerCapabilitiesDefaults
    own.UseServerCapabilitiesDefaults = True
    again = (
        await read_one(service, d, "A.Mixed", processed(s(0), s(10), 0, O.AggregateFunction_Average, own))
    ).HistoryData.DataValues[0]
    assert again.StatusCode.value == default.StatusCode.value
    own.UseServerCapabilitiesDefaults, own.PercentDataGood = False, 150
    rejected = await read_one(service, d, "A.Mixed", processed(s(0), s(10), 0, O.AggregateFunction_Average, own))
    assert rejected.StatusCode.value == S.BadAggregateConfigurationRejected


async def test_processed_invalid_requests(rig) -> None:
    server, d, archive, service = rig
    same = await read_one(service, d, "A.Flow", processed(s(5), s(5), 0, O.AggregateFunction_Average))
    assert same.StatusCode.value == S.BadInvalidArgument  # Part 13 5.4.2.2 Table 12
    unknown = await read_one(
        service, d, "A.Flow", processed(s(0), s(5), 0, O.AggregateFunction_StandardDeviationSample)
    )
    assert unknown.StatusCode.value == S.BadAggregateNotSupported


async def test_server_advertises_its_aggregate_defaults(stage) -> None:
    server, d, archive, service = await make_rig(
        stage, max_continuation_points=7, aggregates={"percent_data_good": 80, "treat_uncertain_as_bad": False}
    )
    expected = {
        O.DefaultHAConfiguration_AggregateConfiguration_TreatUncertainAsBad: False,
        O.DefaultHAConfiguration_AggregateConfiguration_PercentDataBad: 100,
        O.DefaultHAConfiguration_AggregateConfiguration_PercentDataGood: 80,
        O.DefaultHAConfiguration_AggregateConfiguration_UseSlopedExtrapolation: False,
        O.Server_ServerCapabilities_MaxHistoryContinuationPoints: 7,
        O.HistoryServerCapabilities_MaxReturnDataValues: 10_000,
    }
    for ident, value in expected.items():
        assert await server.get_node(ua.NodeId(ident)).read_value() == value, ident
    functions = server.get_node(ua.NodeId(O.DefaultHAConfiguration_AggregateFunctions))
    advertised = {r.NodeId for r in await functions.get_references(O.Organizes)}
    assert ua.NodeId(O.AggregateFunction_TimeAverage) in advertised


async def test_at_time_interpolates(rig) -> None:
    server, d, archive, service = rig
    details = ua.ReadAtTimeDetails(ReqTimes=[s(2.5), s(2), s(-1)], UseSimpleBounds=True)
    res = await read_one(service, d, "A.Flow", details)
    dvs = res.HistoryData.DataValues
    assert vals(dvs) == [2.5, 2.0, S.BadNoData]  # request order kept
    assert [dv.StatusCode.value & 0x3 for dv in dvs[:2]] == [2, 0]  # Interpolated, Raw


# ---- nodes of one request ------------------------------------------------------------------------------------
async def test_node_errors_are_per_node(rig) -> None:
    server, d, archive, service = rig
    names = ("A.Flow", "A.Broken", "A.Live")
    nodes = params(raw(T0, s(9)), names, d)
    nodes.NodesToRead.append(ua.HistoryReadValueId(NodeId=ua.NodeId("nope", d.tag_ns)))
    codes = [r.StatusCode.value for r in await service.read(reader(), nodes)]
    assert codes == [S.Good, S.BadCommunicationError, S.BadHistoryOperationUnsupported, S.BadNodeIdUnknown]
    nobody = SimpleNamespace(user=BridgeUser.anonymous(None), session_id=ua.NodeId(2, 1))
    (denied, *_) = await service.read(nobody, nodes)
    assert denied.StatusCode.value == S.BadUserAccessDenied


@pytest.mark.parametrize(
    "details",
    [
        raw(T0, s(4000)),
        processed(T0, s(4000), 60_000, O.AggregateFunction_TimeAverage),
        ua.ReadAtTimeDetails(ReqTimes=[s(1), s(3000)], UseSimpleBounds=True),
    ],
    ids=["raw", "processed", "at-time"],
)
async def test_one_node_failing_midway_leaves_the_others(rig, details) -> None:
    server, d, archive, service = rig
    # A.Flaky answers its first page, then the connection breaks
    if isinstance(details, ua.ReadProcessedDetails):
        details = dataclasses.replace(details, AggregateType=details.AggregateType * 4)  # one per node
    results = await service.read(reader(), params(details, ["A.Flow", "A.Flaky", "A.Broken", "A.C0"], d))
    assert [r.StatusCode.value for r in results] == [S.Good, S.BadCommunicationError, S.BadCommunicationError, S.Good]
    assert results[0].HistoryData.DataValues and results[3].HistoryData.DataValues
    assert results[1].HistoryData.DataValues == []


async def test_nodes_are_read_concurrently_up_to_max_concurrency(stage) -> None:
    server, d, archive, service = await make_rig(stage, max_concurrency=2)
    archive.gate = asyncio.Event()
    names = [f"A.C{k}" for k in range(5)]
    task = asyncio.create_task(service.read(reader(), params(raw(T0, s(100)), names, d)))
    try:
        await wait_until(lambda: archive.inflight == 2, timeout=10, what="two archive requests in flight")
        assert not task.done()
    finally:
        archive.gate.set()
    results = await asyncio.wait_for(task, 10)
    assert [len(r.HistoryData.DataValues) for r in results] == [10] * 5
    assert archive.max_inflight == 2  # concurrent, and never more than the cap


# ---- end to end through the real dp REST client ----------------------------------------------------------------
BASE = "http://wincc.test:8700"
REST_CAP = 5  # the REST server answers at most this many values, fewer than the bridge's page size


def rest_archive(values: list[tuple[datetime, int]]):
    """/api/history/<name> as the contract says: start and end inclusive, oldest first, at most min(limit, cap)."""
    requests: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        requests.append(q)
        lo, hi, limit = parse_ts(q["start"]), parse_ts(q["end"]), int(q["limit"])
        sel = [(t, v) for t, v in values if lo <= t <= hi][: min(limit, REST_CAP)]
        return httpx.Response(
            200, json={"name": "R", "values": [{"value": v, "quality": 192, "timestamp": format_ts(t)} for t, v in sel]}
        )

    return handler, requests


async def test_rest_archive_paging_end_to_end(stage) -> None:
    # 4 values per timestamp, so REST answers capped at 5 values end inside a group of equal timestamps
    series = [(s(i // 4), i) for i in range(200)]
    handler, requests = rest_archive(series)
    server, d = stage
    config = WinCCConfig.model_validate({"url": BASE, "retry": {"attempts": 2, "backoff_s": 0}})
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/api/history/R.Dup").mock(side_effect=handler)
        mock.get("/api/history/R.Down").mock(return_value=httpx.Response(503))
        async with open_client(config) as client:
            service = HistoryService(server, d, client, HistoryConfig(page_size=8, max_values_per_read=1000))
            values, calls = await read_all(service, d, "R.Dup", raw(T0, s(100), 6))
            assert [v.Value.Value for v in values] == list(range(200))
            assert calls == -(-200 // 6)
            # the bridge asked for more than the REST cap each time and had to ask again from the last timestamp
            assert all(int(q["limit"]) > REST_CAP for q in requests) and len(requests) >= 200 // REST_CAP
            backwards, _ = await read_all(service, d, "R.Dup", raw(s(49), s(40), 3))
            assert [v.Value.Value for v in backwards] == list(range(199, 163, -1))
            # processed over the same paging: (4 values per second) 10 s -> Count 40, average of 0..39 = 19.5
            res = await read_one(service, d, "R.Dup", processed(T0, s(20), 10_000, O.AggregateFunction_Average))
            assert [dv.Value.Value for dv in res.HistoryData.DataValues] == [19.5, 59.5]
            # one node's REST failure is that node's BadCommunicationError only
            both = await service.read(reader(), params(raw(T0, s(3)), ["R.Dup", "R.Down"], d))
            assert [r.StatusCode.value for r in both] == [S.Good, S.BadCommunicationError]
            assert [v.Value.Value for v in both[0].HistoryData.DataValues] == list(range(12))
