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
    raw = await node.read_raw_history(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC), numvalues=1,
                                      return_bounds=False)
    assert raw[0].Value.Value == 30.0
    return raw[0].SourceTimestamp.replace(tzinfo=UTC)


async def _processed(client: Client, node, aggregate: int, start: datetime, end: datetime, interval_ms: float):
    details = ua.ReadProcessedDetails(StartTime=start, EndTime=end, ProcessingInterval=interval_ms,
                                      AggregateType=[ua.NodeId(aggregate)])
    params = ua.HistoryReadParameters(HistoryReadDetails=details, ReleaseContinuationPoints=False,
                                      TimestampsToReturn=ua.TimestampsToReturn.Source,
                                      NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid)])
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
        raw = await node.read_raw_history(start, end - timedelta(microseconds=1), return_bounds=False)
        assert [dv.Value.Value for dv in raw] == pytest.approx(values)
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
            assert dv.StatusCode.is_good(), (aggregate, dv.StatusCode)
            assert dv.Value.Value == pytest.approx(value, abs=1e-6), aggregate
        (max_at,) = await _processed(client, node, O.AggregateFunction_MaximumActualTime, start, end, 0)
        assert max_at.SourceTimestamp.replace(tzinfo=UTC) == epoch + timedelta(seconds=159)
        # 10 s intervals: six averages 40.45, 41.45, ...
        dvs = await _processed(client, node, O.AggregateFunction_Average, start, end, 10_000)
        assert [round(d.Value.Value, 6) for d in dvs] == [round(40.45 + k, 6) for k in range(6)]
        # at-time between two raw values interpolates
        details = ua.ReadAtTimeDetails(ReqTimes=[start + timedelta(seconds=0.5)], UseSimpleBounds=True)
        params = ua.HistoryReadParameters(HistoryReadDetails=details, ReleaseContinuationPoints=False,
                                          TimestampsToReturn=ua.TimestampsToReturn.Source,
                                          NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid)])
        (res,) = await client.uaclient.history_read(params)
        assert res.HistoryData.DataValues[0].Value.Value == pytest.approx(40.05)
        # advertised in the server's capabilities
        functions = client.get_node(ua.NodeId(O.HistoryServerCapabilities_AggregateFunctions))
        advertised = {c.nodeid for c in await functions.get_children(refs=O.Organizes)}
        assert {ua.NodeId(a) for a in expected} <= advertised
    finally:
        await client.disconnect()
