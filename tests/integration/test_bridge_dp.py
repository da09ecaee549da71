"""The whole bridge over real interfaces: simulator (HTTP) and bridge in their own processes, an asyncua client
over TCP in this one. dp dialect."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import wait_until
from tests.integration.conftest import WINCC_PASSWORD

NS_URI = "urn:wincc-opcua-bridge:tags"
LEVEL = "System1.Tank1.Level"
SETPOINT = "System1.Tank1.LevelSetpoint"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("dp")


async def _client(stack, user: str | None = "operator") -> Client:
    client = Client(stack.url_for(user), timeout=10)
    await client.connect()
    return client


async def _ns(client: Client) -> int:
    return await client.get_namespace_index(NS_URI)


async def test_browse_finds_tags_with_nodeids_types_and_units(stack) -> None:
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        level = client.get_node(ua.NodeId(LEVEL, ns))
        assert (await level.read_display_name()).Text == "Level"
        assert await level.read_data_type() == ua.NodeId(ua.ObjectIds.Float)
        type_def = await level.read_type_definition()
        assert type_def == ua.NodeId(ua.ObjectIds.AnalogItemType)
        props = {(await p.read_browse_name()).Name: p for p in await level.get_properties()}
        eu = await props["EngineeringUnits"].read_value()
        assert eu.DisplayName.Text == "m"
        rng = await props["EURange"].read_value()
        assert (rng.Low, rng.High) == (0, 10)
        assert (await level.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
        odd = client.get_node(ua.NodeId("System1.Hall 2.Temperatur Außen", ns))
        assert (await odd.read_display_name()).Text == "Temperatur Außen"
        # the folder chain Objects > WinCC > System1 > Tank1 holds the tag
        bridge_ns = await client.get_namespace_index(NS_URI + "/bridge")
        folder_ns = await client.get_namespace_index(NS_URI + "/folders")
        wincc = client.get_node(ua.NodeId("WinCC", bridge_ns))
        assert wincc.nodeid in [c.nodeid for c in await client.nodes.objects.get_children()]
        tank = client.get_node(ua.NodeId("System1/Tank1", folder_ns))
        assert level.nodeid in [c.nodeid for c in await tank.get_children()]
    finally:
        await client.disconnect()


def _wincc_timestamp(stack, name: str) -> datetime:
    """The tag's timestamp as WinCC itself reports it (GET /api/dp/<name>, the dp dialect's single-tag read)."""
    r = httpx.get(f"{stack.sim_base}/api/dp/{name}", auth=("opcua", WINCC_PASSWORD), timeout=10)
    r.raise_for_status()
    return datetime.fromisoformat(r.json()["timestamp"])


async def test_values_follow_the_simulator_with_wincc_timestamps(stack) -> None:
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        node = client.get_node(ua.NodeId("System1.Counters.Int16Value", ns))
        before_set = datetime.now(UTC)
        stack.sim_control("/_sim/tags", {"set": {"System1.Counters.Int16Value": 42}})
        wincc_ts = _wincc_timestamp(stack, "System1.Counters.Int16Value")

        async def is_42():
            dv = await node.read_data_value(raise_on_bad_status=False)
            return dv if dv.StatusCode.is_good() and dv.Value.Value == 42 else None

        dv = await wait_until(is_42, timeout=10, what="value 42 from the simulator")
        seen = datetime.now(UTC)
        assert dv.Value.VariantType == ua.VariantType.Int16
        # SourceTimestamp is WinCC's timestamp to the millisecond WinCC gives, not the bridge's clock
        assert wincc_ts.microsecond % 1000 == 0 and before_set - timedelta(milliseconds=1) <= wincc_ts <= seen
        assert dv.SourceTimestamp == wincc_ts
        # ServerTimestamp is the bridge's clock when it took the value in: after WinCC changed it, before we saw it
        assert wincc_ts <= dv.ServerTimestamp and before_set < dv.ServerTimestamp <= seen
        assert dv.ServerTimestamp != dv.SourceTimestamp
        stack.sim_control("/_sim/tags", {"quality": {"System1.Counters.Int16Value": 0x0C}})

        async def device_failure():
            dv = await node.read_data_value(raise_on_bad_status=False)
            return dv.StatusCode.value & 0xFFFF0000 == ua.StatusCodes.BadDeviceFailure

        await wait_until(device_failure, timeout=10, what="BadDeviceFailure from quality 0x0C")
        stack.sim_control("/_sim/tags", {"quality": {"System1.Counters.Int16Value": 0xC0}})
    finally:
        await client.disconnect()


class _Collect:
    def __init__(self) -> None:
        self.items: list[tuple[float, datetime, ua.DataValue]] = []  # (monotonic, wall clock, value) at arrival

    def datachange_notification(self, node, val, data) -> None:
        self.items.append((time.monotonic(), datetime.now(UTC), data.monitored_item.Value))


async def test_subscription_gets_every_change_in_order(stack) -> None:
    """Each change the simulator makes reaches the subscriber, once, in the order made, stamped with WinCC's own
    moment of the change (the simulator stamps a set with its clock; same host, same clock). How fast it arrives is
    a performance figure, measured by bench/ (`python -m bench --only polling`: poll interval + publishing
    interval + 200 ms), not asserted here."""
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        handler = _Collect()
        sub = await client.create_subscription(50, handler)
        node = client.get_node(ua.NodeId("System1.Counters.Batch", ns))
        handle = await sub.subscribe_data_change(node, sampling_interval=200)
        await wait_until(lambda: handler.items, timeout=10, what="initial value")
        values = range(1001, 1007)
        for value in values:
            sent = datetime.now(UTC)
            stack.sim_control("/_sim/tags", {"set": {"System1.Counters.Batch": value}})
            answered = datetime.now(UTC)
            await wait_until(
                lambda v=value: any(dv.Value.Value == v for _, _, dv in handler.items),
                timeout=10,
                what=f"notification of {value}",
            )
            arrived, dv = next((at, dv) for _, at, dv in handler.items if dv.Value.Value == value)
            changed = dv.SourceTimestamp  # the simulator's own moment of the change (ms precision)
            assert sent - timedelta(milliseconds=1) <= changed <= answered, (sent, changed, answered)
            assert arrived >= changed - timedelta(milliseconds=1), (changed, arrived)
        seen = [dv.Value.Value for _, _, dv in handler.items if dv.Value.Value in values]
        assert seen == list(values)
        await sub.unsubscribe(handle)
        await sub.delete()
    finally:
        await client.disconnect()


STATUS_FIELDS = ("Connected", "State", "LastSuccessfulPoll", "TagCount", "PollCycleMs", "LateCycles", "PollErrors")


async def _bridge_status(client: Client) -> dict[str, object]:
    """Every BridgeStatus variable, read in one Read."""
    bridge_ns = await client.get_namespace_index(NS_URI + "/bridge")
    nodes = [client.get_node(ua.NodeId(f"BridgeStatus.{f}", bridge_ns)) for f in STATUS_FIELDS]
    values = await client.read_values(nodes)
    return dict(zip(STATUS_FIELDS, values, strict=True))


def _metric(stack, name: str) -> float:
    text = httpx.get(stack.health_url + "/metrics", timeout=5).text
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[1])


async def test_bridge_status_describes_the_bridge(stack) -> None:
    client = await _client(stack, "reader")
    try:
        first = await wait_until(lambda: _status_if(client, Connected=True), timeout=10, what="connected")
        assert first["State"] == "connected"
        tags = httpx.get(stack.sim_base + "/_sim/health", timeout=5).json()["tags"]
        assert first["TagCount"] == tags
        assert abs(datetime.now(UTC) - first["LastSuccessfulPoll"]) < timedelta(seconds=5)
        # the slowest poll group's last cycle: 20 tags in one REST read, well under its 1 s interval
        assert 0 < first["PollCycleMs"] < 1000
        # LateCycles is the bridge's counter (the status is written at the end of a cycle, so it may lag by one)
        assert 0 <= first["LateCycles"] <= _metric(stack, "wincc_bridge_late_cycles_total")
        assert first["PollErrors"] == _metric(stack, "wincc_bridge_poll_errors_total")
        later = await wait_until(
            lambda: _status_if(client, lambda s: s["LastSuccessfulPoll"] > first["LastSuccessfulPoll"]),
            timeout=5,
            what="LastSuccessfulPoll advancing",
        )
        assert later["Connected"] is True and later["TagCount"] == tags
    finally:
        await client.disconnect()


async def _status_if(client: Client, check=None, **expected):
    status = await _bridge_status(client)
    if all(status[k] == v for k, v in expected.items()) and (check is None or check(status)):
        return status
    return None


async def test_wincc_down_marks_bad_keeps_value_and_recovers(stack) -> None:
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        # a tag the plant never changes by itself, set to a value no other test uses: the value kept while WinCC
        # is down can be compared exactly (6.125 is exact as a Float)
        node = client.get_node(ua.NodeId(SETPOINT, ns))
        stack.sim_control("/_sim/tags", {"set": {SETPOINT: 6.125}})

        async def shows_it():
            dv = await node.read_data_value(raise_on_bad_status=False)
            return dv.StatusCode.is_good() and dv.Value.Value == 6.125

        await wait_until(shows_it, timeout=10, what="the setpoint 6.125 served Good")
        before = await _bridge_status(client)
        assert before["Connected"] is True and before["State"] == "connected"
        stack.sim_control("/_sim/faults", {"mode": "down"})
        try:
            dv = await wait_until(
                lambda: _status(node, ua.StatusCodes.BadCommunicationError),
                timeout=15,
                what="BadCommunicationError while WinCC is down",
            )
            assert dv.Value.Value == 6.125  # the last value, kept exactly
            down = await wait_until(
                lambda: _status_if(client, Connected=False, State="down"), timeout=10, what="BridgeStatus down"
            )
            assert down["PollErrors"] > before["PollErrors"]
            # every failed cycle counts while WinCC stays down (retries back off to sync.max_backoff_s = 1 s)
            more = await wait_until(
                lambda: _status_if(client, lambda s: s["PollErrors"] >= down["PollErrors"] + 2),
                timeout=10,
                what="PollErrors counting up while down",
            )
            assert more["Connected"] is False and more["State"] == "down"
            assert more["LastSuccessfulPoll"] == down["LastSuccessfulPoll"] <= datetime.now(UTC)
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")
        await wait_until(lambda: _good(node), timeout=20, what="Good again after WinCC is back")
        back = await wait_until(
            lambda: _status_if(client, Connected=True, State="connected"),
            timeout=10,
            what="BridgeStatus connected again",
        )
        assert back["LastSuccessfulPoll"] > more["LastSuccessfulPoll"]
        assert back["PollErrors"] >= more["PollErrors"]
    finally:
        await client.disconnect()


async def _good(node) -> bool:
    return (await node.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()


async def _status(node, code: int):
    dv = await node.read_data_value(raise_on_bad_status=False)
    return dv if dv.StatusCode.value & 0xFFFF0000 == code else None


async def test_write_statuses_per_node(stack) -> None:
    stack.sim_control("/_sim/stats/reset", {})
    client = await _client(stack, "operator")
    try:
        ns = await _ns(client)
        nid = lambda n: ua.NodeId(n, ns)  # noqa: E731
        F, D, B, I16, S = (
            ua.VariantType.Float,
            ua.VariantType.Double,
            ua.VariantType.Boolean,
            ua.VariantType.Int16,
            ua.VariantType.String,
        )
        cases = [
            (nid(SETPOINT), ua.Variant(4.5, F), ua.StatusCodes.Good),
            (nid("System1.Tank1.InletValve"), ua.Variant(True, B), ua.StatusCodes.Good),
            (nid(LEVEL), ua.Variant(1.0, F), ua.StatusCodes.BadNotWritable),
            (nid("System1.No.Such.Tag"), ua.Variant(1.0, F), ua.StatusCodes.BadNodeIdUnknown),
            (nid(SETPOINT), ua.Variant("x", S), ua.StatusCodes.BadTypeMismatch),
            (nid(SETPOINT), ua.Variant(11.0, F), ua.StatusCodes.BadOutOfRange),
            (nid("System1.Counters.Int16Value"), ua.Variant(7, I16), ua.StatusCodes.Good),
            (nid("System1.Counters.Int16Value"), ua.Variant(0.5, D), ua.StatusCodes.BadTypeMismatch),
        ]
        params = ua.WriteParameters(
            NodesToWrite=[
                ua.WriteValue(NodeId=n, AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(v)) for n, v, _ in cases
            ]
        )
        results = await client.uaclient.write(params)
        assert [r.value for r in results] == [c for _, _, c in cases]
        writes = stack.sim_stats()["writes"]
        assert sorted((w["name"], w["value"]) for w in writes) == sorted(
            [(SETPOINT, 4.5), ("System1.Tank1.InletValve", True), ("System1.Counters.Int16Value", 7)]
        )
        # the written value shows at once
        assert await client.get_node(nid("System1.Counters.Int16Value")).read_value() == 7
        assert "user=operator" in stack.log_text() and "System1.Counters.Int16Value" in stack.log_text()
    finally:
        await client.disconnect()


async def test_reader_and_anonymous_cannot_write(stack) -> None:
    for user in ("reader", None):
        client = await _client(stack, user)
        try:
            ns = await _ns(client)
            node = client.get_node(ua.NodeId(SETPOINT, ns))
            params = ua.WriteParameters(
                NodesToWrite=[
                    ua.WriteValue(
                        NodeId=node.nodeid,
                        AttributeId=ua.AttributeIds.Value,
                        Value=ua.DataValue(ua.Variant(2.0, ua.VariantType.Float)),
                    )
                ]
            )
            (result,) = await client.uaclient.write(params)
            assert result.value == ua.StatusCodes.BadUserAccessDenied
            level = await node.read_attribute(ua.AttributeIds.UserAccessLevel)
            assert not level.Value.Value & (1 << ua.AccessLevel.CurrentWrite.value)
        finally:
            await client.disconnect()


async def test_wrong_password_is_refused_and_not_logged(stack) -> None:
    host = stack.endpoint.removeprefix("opc.tcp://")
    client = Client(f"opc.tcp://operator:not-the-password@{host}", timeout=10)
    with pytest.raises(Exception):
        await client.connect()
    await wait_until(lambda: "failed login for user 'operator'" in stack.log_text(), timeout=5)
    text = stack.log_text()
    assert "not-the-password" not in text
    for pw in stack.users.values():
        assert pw not in text


async def test_history_raw_paged_by_continuation_points(stack) -> None:
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        node = client.get_node(ua.NodeId(LEVEL, ns))
        end = datetime.now(UTC)
        start = end - timedelta(hours=2)
        seen: list[datetime] = []
        cp = None
        pages = 0
        while True:
            details = ua.ReadRawModifiedDetails(
                IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=100, ReturnBounds=False
            )
            params = ua.HistoryReadParameters(
                ReleaseContinuationPoints=False,
                HistoryReadDetails=details,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid, ContinuationPoint=cp)],
            )
            (res,) = await client.uaclient.history_read(params)
            assert res.StatusCode.is_good(), res.StatusCode
            values = res.HistoryData.DataValues
            seen += [dv.SourceTimestamp for dv in values]
            pages += 1
            cp = res.ContinuationPoint
            if not cp:
                break
            assert len(values) == 100
        assert pages > 1
        assert seen == sorted(seen) and len(seen) == len(set(seen))
        assert len(seen) >= 2 * 3600 // 10 - 2  # the simulator backfills one value every 10 s
    finally:
        await client.disconnect()


async def test_history_processed_average_and_count(stack) -> None:
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        node = client.get_node(ua.NodeId(LEVEL, ns))
        # end exactly on an archived value (the backfill has one every 10 s): both the raw read and the aggregates
        # must leave it out (Part 11: EndTime is exclusive), and the 30-minute window then starts on a value too
        probe = await node.read_raw_history(
            datetime.now(UTC) - timedelta(minutes=10), datetime.now(UTC) - timedelta(minutes=5), return_bounds=False
        )
        end = probe[-1].SourceTimestamp
        start = end - timedelta(minutes=30)
        raw = await node.read_raw_history(start, end, return_bounds=False)
        assert raw[0].SourceTimestamp == start and raw[-1].SourceTimestamp == end - timedelta(seconds=10)
        good = [dv.Value.Value for dv in raw if dv.StatusCode.is_good()]
        assert len(good) == 180
        for aggregate, expected in (
            (ua.ObjectIds.AggregateFunction_Count, len(good)),
            (ua.ObjectIds.AggregateFunction_Average, sum(good) / len(good)),
            (ua.ObjectIds.AggregateFunction_Maximum, max(good)),
        ):
            details = ua.ReadProcessedDetails(
                StartTime=start, EndTime=end, ProcessingInterval=0, AggregateType=[ua.NodeId(aggregate)]
            )
            params = ua.HistoryReadParameters(
                ReleaseContinuationPoints=False,
                HistoryReadDetails=details,
                TimestampsToReturn=ua.TimestampsToReturn.Source,
                NodesToRead=[ua.HistoryReadValueId(NodeId=node.nodeid)],
            )
            (res,) = await client.uaclient.history_read(params)
            (dv,) = res.HistoryData.DataValues
            assert dv.Value.Value == pytest.approx(expected, rel=1e-5), aggregate
    finally:
        await client.disconnect()


def test_sigterm_stops_cleanly_with_exit_0(bridge_stack) -> None:
    stack = bridge_stack("dp")
    assert stack.bridge is not None
    stack.bridge.send_signal(signal.SIGTERM)
    assert stack.bridge.wait(20) == 0
    assert "Traceback" not in stack.log_text()


async def test_user_executable_follows_the_role(stack) -> None:
    refresh = ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh)
    state_change = ua.NodeId(ua.ObjectIds.Server_RequestServerStateChange)
    expected = {"reader": (True, False), "admin": (True, True)}
    for user, (can_refresh, can_change_state) in expected.items():
        client = await _client(stack, user)
        try:
            got = []
            for method in (refresh, state_change):
                dv = await client.get_node(method).read_attribute(ua.AttributeIds.UserExecutable)
                got.append(dv.Value.Value)
            assert tuple(got) == (can_refresh, can_change_state), user
        finally:
            await client.disconnect()


async def test_every_simulator_tag_is_served_with_its_type(stack) -> None:
    client = await _client(stack, "reader")
    try:
        ns = await _ns(client)
        bridge_ns = await client.get_namespace_index(NS_URI + "/bridge")
        found: dict[str, ua.NodeId] = {}

        async def walk(node) -> None:
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                nid = child.nodeid
                if nid.NamespaceIndex == ns:
                    found[nid.Identifier] = await child.read_data_type()
                elif await child.read_node_class() == ua.NodeClass.Object:
                    await walk(child)

        await walk(client.get_node(ua.NodeId("WinCC", bridge_ns)))
        expected = {
            "bool": ua.ObjectIds.Boolean,
            "int8": ua.ObjectIds.SByte,
            "int16": ua.ObjectIds.Int16,
            "int32": ua.ObjectIds.Int32,
            "int64": ua.ObjectIds.Int64,
            "uint8": ua.ObjectIds.Byte,
            "uint16": ua.ObjectIds.UInt16,
            "uint32": ua.ObjectIds.UInt32,
            "uint64": ua.ObjectIds.UInt64,
            "float": ua.ObjectIds.Float,
            "double": ua.ObjectIds.Double,
            "string": ua.ObjectIds.String,
            "datetime": ua.ObjectIds.DateTime,
        }
        items, path_stack = [], [""]
        while path_stack:
            path = path_stack.pop()
            body = httpx.get(
                f"{stack.sim_base}/api/dp/browse", params={"path": path, "limit": 1000}, auth=("opcua", WINCC_PASSWORD)
            ).json()
            for item in body["items"]:
                if item["kind"] == "folder":
                    path_stack.append(item["name"] + ".")
                else:
                    items.append(item)
        assert set(found) >= {i["name"] for i in items}
        for item in items:
            assert found[item["name"]] == ua.NodeId(expected[item["type"]]), item["name"]
    finally:
        await client.disconnect()


async def test_write_statuses_that_never_reach_wincc_and_timeout(stack) -> None:
    client = await _client(stack, "operator")
    try:
        ns = await _ns(client)
        sp = ua.NodeId(SETPOINT, ns)
        value = ua.DataValue(ua.Variant(2.0, ua.VariantType.Float))
        stamped = ua.DataValue(ua.Variant(2.0, ua.VariantType.Float), SourceTimestamp=datetime.now(UTC))
        nodes = [
            ua.WriteValue(NodeId=sp, AttributeId=ua.AttributeIds.Value, IndexRange="0", Value=value),
            ua.WriteValue(NodeId=sp, AttributeId=ua.AttributeIds.Value, Value=stamped),
            ua.WriteValue(
                NodeId=sp,
                AttributeId=ua.AttributeIds.DisplayName,
                Value=ua.DataValue(ua.Variant(ua.LocalizedText("x"))),
            ),
        ]
        stack.sim_control("/_sim/stats/reset", {})
        results = await client.uaclient.write(ua.WriteParameters(NodesToWrite=nodes))
        assert [r.value for r in results] == [
            ua.StatusCodes.BadIndexRangeInvalid,
            ua.StatusCodes.BadWriteNotSupported,
            ua.StatusCodes.BadNotWritable,
        ]
        assert stack.sim_stats()["writes"] == []
        # WinCC slower than wincc.timeouts.write_s (5 s in the test stack): BadTimeout, not a hung client
        stack.sim_control("/_sim/faults", {"mode": "slow", "latency_ms": 8000})
        try:
            params = ua.WriteParameters(
                NodesToWrite=[ua.WriteValue(NodeId=sp, AttributeId=ua.AttributeIds.Value, Value=value)]
            )
            (result,) = await client.uaclient.write(params)
            assert result.value == ua.StatusCodes.BadTimeout
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")
    finally:
        await client.disconnect()
