"""The standard Server object over TCP, as UaExpert, a redundant client pair or an MES reads it: ServiceLevel
following WinCC, diagnostics counters moving as sessions come and go, BuildInfo, Auditing, and the bridge's own
NodeSet type on BridgeStatus."""

from __future__ import annotations

from dataclasses import fields

import pytest
from asyncua import Client, ua

from bridge.opcua.model.server_object import build_date, package_version
from tests.helpers import wait_until
from tests.integration.conftest import WRONG_PASSWORD

NS_URI = "urn:wincc-opcua-bridge:tags"
O = ua.ObjectIds
SUMMARY = "Server_ServerDiagnostics_ServerDiagnosticsSummary_"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("dp")


async def _client(stack, user: str | None = "reader", **kw) -> Client:
    client = Client(stack.url_for(user), timeout=10, **kw)
    await client.connect()
    return client


async def _value(client: Client, node_id: int):
    return await client.get_node(ua.NodeId(node_id)).read_value()


async def _summary(client: Client) -> dict[str, int]:
    names = [f.name for f in fields(ua.ServerDiagnosticsSummaryDataType)]
    values = await client.read_values([client.get_node(ua.NodeId(getattr(O, SUMMARY + n))) for n in names])
    return dict(zip(names, values, strict=True))


async def test_service_level_falls_when_wincc_goes_away_and_rises_when_it_returns(stack) -> None:
    client = await _client(stack)
    try:
        level = client.get_node(ua.NodeId(O.Server_ServiceLevel))
        assert await wait_until(lambda: _at_least(level, 200), timeout=10, what="ServiceLevel healthy")
        stack.sim_control("/_sim/faults", {"mode": "down"})
        try:
            # the test config polls every 200 ms (idle tags every 1000 ms): two cycles, plus slack for a busy CI box
            assert await wait_until(lambda: _equals(level, 1), timeout=8, what="ServiceLevel NoData")
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")
        assert await wait_until(lambda: _at_least(level, 200), timeout=15, what="ServiceLevel healthy again")
        assert await level.read_data_type() == ua.NodeId(O.Byte)
    finally:
        await client.disconnect()


async def _at_least(node, floor: int) -> bool:
    return (await node.read_value()) >= floor


async def _equals(node, value: int) -> bool:
    return (await node.read_value()) == value


async def test_build_info_auditing_and_no_redundancy(stack) -> None:
    client = await _client(stack)
    try:
        info = await _value(client, O.Server_ServerStatus_BuildInfo)
        assert info.ProductName == "WinCC OPC UA Bridge"
        assert info.SoftwareVersion == package_version() and info.SoftwareVersion[0].isdigit()
        assert info.ProductUri == "urn:wincc-opcua-bridge" and "FreeOpcUa" not in info.ManufacturerName
        assert abs((info.BuildDate - build_date()).total_seconds()) < 1
        assert await _value(client, O.Server_ServerStatus_BuildInfo_SoftwareVersion) == package_version()
        assert await _value(client, O.Server_Auditing) is True
        assert await _value(client, O.Server_ServerDiagnostics_EnabledFlag) is True
        # no opcua.redundancy: a standalone server (tests/integration/test_redundancy_tcp.py has a pair)
        assert await _value(client, O.Server_ServerRedundancy_RedundancySupport) == ua.RedundancySupport.None_
    finally:
        await client.disconnect()


async def test_diagnostics_counters_move_as_sessions_come_and_go(stack) -> None:
    watcher = await _client(stack, "admin")
    try:
        before = await wait_until(lambda: _counting(watcher), timeout=10, what="this session counted")
        assert before["CumulatedSessionCount"] >= before["CurrentSessionCount"]

        # a session with a subscription, then closed properly
        subscriber = await _client(stack, "reader")
        sub = await subscriber.create_subscription(200, None)
        await sub.subscribe_data_change(subscriber.get_node(ua.NodeId(O.Server_ServerStatus_CurrentTime)))
        now = await wait_until(
            lambda: _moved(
                watcher,
                before,
                CumulatedSessionCount=1,
                CurrentSessionCount=1,
                CumulatedSubscriptionCount=1,
                CurrentSubscriptionCount=1,
            ),
            timeout=10,
            what="session and subscription counted",
        )
        # this session shows up in SessionDiagnosticsArray with its subscription, its item and its requests
        mine = await wait_until(lambda: _session_entry(watcher), timeout=10, what="SessionDiagnosticsArray entry")
        assert mine.TotalRequestCount.TotalCount >= 3 and mine.ActualSessionTimeout > 0
        await subscriber.disconnect()
        now = await wait_until(
            lambda: _moved(watcher, now, CurrentSessionCount=-1, CurrentSubscriptionCount=-1),
            timeout=10,
            what="closed session gone",
        )

        # a wrong password: a rejected session, for security reasons
        bad = Client(stack.url_for("reader").replace(stack.users["reader"], WRONG_PASSWORD), timeout=10)
        with pytest.raises(ua.UaError):
            await bad.connect()
        await bad.disconnect()
        now = await wait_until(
            lambda: _moved(watcher, now, RejectedSessionCount=1, SecurityRejectedSessionCount=1),
            timeout=10,
            what="rejected session counted",
        )

        # a reader asking for AddNodes: a rejected request, for security reasons
        reader = await _client(stack, "reader")
        with pytest.raises(ua.UaError):
            await reader.nodes.objects.add_folder(ua.NodeId("x", 1), "x")
        now = await wait_until(
            lambda: _moved(watcher, now, RejectedRequestsCount=1, SecurityRejectedRequestsCount=1),
            timeout=10,
            what="rejected request counted",
        )

        # the connection drops without CloseSession: an aborted session
        reader.disconnect_socket()
        now = await wait_until(lambda: _moved(watcher, now, SessionAbortCount=1), timeout=10, what="abort counted")

        # a session with a subscription whose client vanishes lives until its timeout (5 s, asyncua's minimum)
        vanishing = Client(stack.url_for("reader"), timeout=10)
        vanishing.session_timeout = 5000
        await vanishing.connect()
        await vanishing.create_subscription(1000, None)
        vanishing.disconnect_socket()
        await wait_until(lambda: _moved(watcher, now, SessionTimeoutCount=1), timeout=20, what="timeout counted")
    finally:
        await watcher.disconnect()


async def _session_entry(client: Client) -> ua.SessionDiagnosticsDataType | None:
    array = await _value(client, O.Server_ServerDiagnostics_SessionsDiagnosticsSummary_SessionDiagnosticsArray)
    mine = [
        s
        for s in array
        if s.CurrentSubscriptionsCount == 1
        and s.CreateSubscriptionCount.TotalCount == 1
        and s.CurrentMonitoredItemsCount == 1
    ]
    return mine[0] if mine else None


async def _counting(client: Client) -> dict[str, int] | None:
    summary = await _summary(client)
    return summary if summary["CurrentSessionCount"] >= 1 else None


async def _moved(client: Client, before: dict[str, int], **deltas: int) -> dict[str, int] | None:
    now = await _summary(client)
    for name, delta in deltas.items():
        assert now[name] - before[name] >= delta if delta > 0 else now[name] - before[name] <= delta, (
            f"{name}: {before[name]} -> {now[name]}, want {delta:+d}"
        )
    return now


async def test_bridge_status_is_a_typed_object_from_the_nodeset(stack) -> None:
    client = await _client(stack)
    try:
        uris = await client.get_namespace_array()
        assert "urn:wincc-opcua-bridge:types" in uris
        types_ns = uris.index("urn:wincc-opcua-bridge:types")
        status = client.get_node(ua.NodeId("BridgeStatus", uris.index(NS_URI + "/bridge")))
        type_id = await status.read_type_definition()
        assert type_id.NamespaceIndex == types_ns
        status_type = client.get_node(type_id)
        assert (await status_type.read_browse_name()).Name == "BridgeStatusType"
        assert await status_type.read_node_class() == ua.NodeClass.ObjectType
        children = {(await c.read_browse_name()).Name for c in await status_type.get_children()}
        assert {"Connected", "State", "LastSuccessfulPoll", "TagCount", "PollCycleMs"} <= children
        connected = await status.get_child(f"{types_ns}:Connected")
        assert await wait_until(connected.read_value, timeout=10, what="BridgeStatus.Connected")
    finally:
        await client.disconnect()


class _Events:
    def __init__(self) -> None:
        self.received: list[object] = []

    def event_notification(self, event: object) -> None:
        self.received.append(event)


async def test_writes_emit_audit_events_on_the_server_object(stack) -> None:
    listener = await _client(stack, "reader")
    operator = await _client(stack, "operator")
    try:
        events = _Events()
        sub = await listener.create_subscription(100, events)
        await sub.subscribe_events(listener.nodes.server, ua.ObjectIds.AuditWriteUpdateEventType)
        ns = await operator.get_namespace_index(NS_URI)
        setpoint = operator.get_node(ua.NodeId("System1.Tank1.LevelSetpoint", ns))
        old = await setpoint.read_value()
        await setpoint.write_value(ua.DataValue(ua.Variant(old + 0.5, ua.VariantType.Float)))
        with pytest.raises(ua.UaStatusCodeError):  # EURange 0..10
            await setpoint.write_value(ua.DataValue(ua.Variant(1e6, ua.VariantType.Float)))
        await wait_until(lambda: len(events.received) >= 2, timeout=10, what="two audit events")
        good, refused = events.received[:2]
        for event in (good, refused):
            assert event.SourceNode == setpoint.nodeid and event.ClientUserId == "operator"
            assert event.AttributeId == ua.AttributeIds.Value and event.ServerId == "urn:wincc-opcua-bridge:server"
        assert good.Status is True and "Good" in good.Message.Text
        assert (good.OldValue, good.NewValue) == (pytest.approx(old), pytest.approx(old + 0.5))
        assert refused.Status is False and refused.NewValue == pytest.approx(1e6)
        assert refused.OldValue == pytest.approx(old + 0.5)  # the good write's value, which WinCC confirmed
        assert "BadOutOfRange" in refused.Message.Text
    finally:
        await operator.disconnect()
        await listener.disconnect()
