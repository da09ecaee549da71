"""Every advertised aggregate against the simulator's deterministic archive, checked against values computed by
hand from its documented series: generated tag i (i % 10 == 0) has one value per second,
value(s) = (i % 97) + (s % 3600) / 10 for float tags, s = whole seconds since the archive epoch, quality good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncua import Client, ua

TAG = "System1.Gen.G000.Tag000030"  # i = 30, a float tag: value(s) = 30 + (s % 3600) / 10
O = ua.ObjectIds


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("dp", sim_args=("--tags", "100", "--change-rate", "0"))


async def _epoch(client: Client, node) -> datetime:
    """The archive epoch: the first archived value's timestamp (s = 0, value 30.0)."""
    raw = await node.read_raw_history(
        datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC), numvalues=1, return_bounds=False
    )
    assert raw[0].Value.Value == 30.0
    return raw[0].SourceTimestamp.replace(tzinfo=UTC)


async def _processed(client: Client, node, aggregate: int, start: datetime, end: datetime, interval_ms: float):
    details = ua.ReadProcessedDetails(
        StartTime=start, EndTime=end, ProcessingInterval=interval_ms, AggregateType=[ua.NodeId(aggregate)]
    )
    params = ua.HistoryReadParameters(
        HistoryReadDetails=details,
        ReleaseContinuationPoints=False,
        TimestampsToReturn=ua.TimestampsToReturn.Source,
        NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid)],
    )
    (res,) = await client.uaclient.history_read(params)
    assert res.StatusCode.is_good(), res.StatusCode
    return res.HistoryData.DataValues


async def test_every_aggregate_matches_hand_computed_values(stack) -> None:
    client = Client(stack.url_for("reader"), timeout=20)
    await client.connect()
    try:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        node = client.get_node(ua.NodeId(TAG, ns))
        epoch = await _epoch(client, node)
        # one minute, s = 100 .. 159 inside the interval [epoch+100 s, epoch+160 s): values 40.0 .. 45.9
        start, end = epoch + timedelta(seconds=100), epoch + timedelta(seconds=160)
        values = [30 + s / 10 for s in range(100, 160)]
        # EndTime is outside the time domain (Part 11 3.1 TimeDomain): 60 values; with bounds the value at EndTime
        # comes as the end bound
        raw = await node.read_raw_history(start, end, return_bounds=False)
        assert [dv.Value.Value for dv in raw] == pytest.approx(values)
        bounded = await node.read_raw_history(start, end, return_bounds=True)
        assert [dv.Value.Value for dv in bounded] == pytest.approx([*values, 46.0])
        # time-weighted: a straight line from 40.0 at 100 s to 46.0 at 160 s (the bound after the interval)
        expected = {
            O.AggregateFunction_Count: 60,
            O.AggregateFunction_Average: sum(values) / 60,
            O.AggregateFunction_Minimum: 40.0,
            O.AggregateFunction_Maximum: 45.9,
            O.AggregateFunction_MinimumActualTime: 40.0,
            O.AggregateFunction_MaximumActualTime: 45.9,
            O.AggregateFunction_Range: 5.9,
            O.AggregateFunction_Start: 40.0,
            O.AggregateFunction_End: 45.9,
            O.AggregateFunction_Delta: 5.9,
            O.AggregateFunction_TimeAverage: 43.0,
            O.AggregateFunction_Total: 43.0 * 60,
            O.AggregateFunction_Interpolative: 40.0,
            O.AggregateFunction_DurationGood: 60_000.0,
            O.AggregateFunction_PercentGood: 100.0,
        }
        for aggregate, value in expected.items():
            (dv,) = await _processed(client, node, aggregate, start, end, 0)
            assert dv.StatusCode.value & 0xFFFF0000 == ua.StatusCodes.Good, (aggregate, dv.StatusCode)
            assert dv.Value.Value == pytest.approx(value, abs=1e-6), aggregate
        (max_at,) = await _processed(client, node, O.AggregateFunction_MaximumActualTime, start, end, 0)
        assert max_at.SourceTimestamp.replace(tzinfo=UTC) == epoch + timedelta(seconds=159)
        # 10 s intervals: six averages 40.45, 41.45, ...
        dvs = await _processed(client, node, O.AggregateFunction_Average, start, end, 10_000)
        assert [round(d.Value.Value, 6) for d in dvs] == [round(40.45 + k, 6) for k in range(6)]
        # at-time between two raw values interpolates
        details = ua.ReadAtTimeDetails(ReqTimes=[start + timedelta(seconds=0.5)], UseSimpleBounds=True)
        params = ua.HistoryReadParameters(
            HistoryReadDetails=details,
            ReleaseContinuationPoints=False,
            TimestampsToReturn=ua.TimestampsToReturn.Source,
            NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid)],
        )
        (res,) = await client.uaclient.history_read(params)
        assert res.HistoryData.DataValues[0].Value.Value == pytest.approx(40.05)
        # advertised in the server's capabilities
        functions = client.get_node(ua.NodeId(O.HistoryServerCapabilities_AggregateFunctions))
        advertised = {c.nodeid for c in await functions.get_children(refs=O.Organizes)}
        assert {ua.NodeId(a) for a in expected} <= advertised
    finally:
        await client.disconnect()


CALCULATED, INTERPOLATED, PARTIAL = 0x1, 0x2, 0x4


def _bits(dv: ua.DataValue) -> int:
    """The historian bits of a StatusCode as the client decoded it (Part 4 7.39: Raw 0, Calculated, Interpolated,
    Partial)."""
    return dv.StatusCode.value & 0x1F


async def test_status_bits_and_reverse_intervals_over_tcp(stack) -> None:
    client = Client(stack.url_for("reader"), timeout=20)
    await client.connect()
    try:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        node = client.get_node(ua.NodeId(TAG, ns))
        epoch = await _epoch(client, node)
        at = lambda sec: epoch + timedelta(seconds=sec)  # noqa: E731
        # [100, 125) in 10 s intervals: the last one is 5 s long -> Partial; Count is always Calculated
        counts = await _processed(client, node, O.AggregateFunction_Count, at(100), at(125), 10_000)
        assert [dv.Value.Value for dv in counts] == [10, 10, 5]
        assert [_bits(dv) for dv in counts] == [CALCULATED, CALCULATED, CALCULATED | PARTIAL]
        (tavg,) = await _processed(client, node, O.AggregateFunction_TimeAverage, at(100), at(160), 0)
        assert _bits(tavg) == CALCULATED
        # Interpolative between the raw values (whole seconds) is Interpolated; on a raw value it is Raw
        half = await _processed(client, node, O.AggregateFunction_Interpolative, at(100.5), at(103.5), 1000)
        assert [dv.Value.Value for dv in half] == pytest.approx([40.05, 40.15, 40.25])
        assert [_bits(dv) for dv in half] == [INTERPOLATED] * 3
        whole = await _processed(client, node, O.AggregateFunction_Interpolative, at(100), at(102), 1000)
        assert [_bits(dv) for dv in whole] == [0, 0] and [dv.Value.Value for dv in whole] == pytest.approx([40, 40.1])
        (start,) = await _processed(client, node, O.AggregateFunction_Start, at(100.5), at(110), 0)
        assert _bits(start) == 0 and start.SourceTimestamp.replace(tzinfo=UTC) == at(101)
        # backwards from 160 s: (135, 160], (110, 135] and the short (100, 110], each stamped with its start
        averages = await _processed(client, node, O.AggregateFunction_Average, at(160), at(100), 25_000)
        assert [dv.SourceTimestamp.replace(tzinfo=UTC) for dv in averages] == [at(160), at(135), at(110)]
        assert [dv.Value.Value for dv in averages] == pytest.approx([30 + 14.8, 30 + 12.3, 30 + 10.55])
        back = await _processed(client, node, O.AggregateFunction_Count, at(160), at(100), 25_000)
        assert [dv.Value.Value for dv in back] == [25, 25, 10]
        assert [_bits(dv) for dv in back] == [CALCULATED, CALCULATED, CALCULATED | PARTIAL]
        # raw reverse: StartTime included, EndTime not
        details = ua.ReadRawModifiedDetails(
            IsReadModified=False, StartTime=at(103), EndTime=at(100), NumValuesPerNode=0, ReturnBounds=False
        )
        params = ua.HistoryReadParameters(
            HistoryReadDetails=details,
            ReleaseContinuationPoints=False,
            TimestampsToReturn=ua.TimestampsToReturn.Source,
            NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid)],
        )
        (res,) = await client.uaclient.history_read(params)
        assert [dv.Value.Value for dv in res.HistoryData.DataValues] == pytest.approx([40.3, 40.2, 40.1])
        # the advertised page size is what a raw read without NumValuesPerNode is cut at
        cap = client.get_node(ua.NodeId(O.HistoryServerCapabilities_MaxReturnDataValues))
        assert await cap.read_value() == 10_000
    finally:
        await client.disconnect()
