"""The bridge against WinCC Unified (GraphQL + WebSocket push), with an OPC UA client over TCP in the test process
and the bridge and simulator in their own processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import wait_until

NS_URI = "urn:wincc-opcua-bridge:tags"
SETPOINT = "HMI_RT_1::System1.Tank1.LevelSetpoint"
LEVEL = "HMI_RT_1::System1.Tank1.Level"
SPEED_SP = "HMI_RT_1::System1.Pump1.SpeedSetpoint"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    # idle tags are polled every 5 s here, so a poll of a monitored tag would show within a short window
    return bridge_stack("unified", config={"sync": {"idle_interval_ms": 5000, "poll_groups_ms": [200, 1000, 5000]}})


class Changes:
    def __init__(self) -> None:
        self.values: list[tuple[str, object, int]] = []

    def datachange_notification(self, node, val, data) -> None:
        dv = data.monitored_item.Value
        self.values.append((node.nodeid.Identifier, val, dv.StatusCode.value))

    def seen(self, name: str, value: object) -> bool:
        return any(n == name and v == value for n, v, _ in self.values)


async def _tag_nodes(client: Client) -> list:
    """Every tag variable under Objects/WinCC, found by browsing as a client would."""
    ns = await client.get_namespace_index(NS_URI)
    out, todo = [], [client.nodes.objects]
    while todo:
        node = todo.pop()
        for child in await node.get_children():
            if (
                child.nodeid.NamespaceIndex == ns
                and isinstance(child.nodeid.Identifier, str)
                and "::" in child.nodeid.Identifier
            ):
                out.append(child)
            elif (await child.read_node_class()) == ua.NodeClass.Object:
                todo.append(child)
    return out


async def test_browse_read_and_every_subscribed_tag_pushed_not_polled(stack) -> None:
    client = Client(stack.url_for("operator"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        folder_ns = await client.get_namespace_index(NS_URI + "/folders")
        tank = client.get_node(ua.NodeId("HMI_RT_1/System1/Tank1", folder_ns))
        level = client.get_node(ua.NodeId(LEVEL, ns))
        assert level.nodeid in [c.nodeid for c in await tank.get_children()]
        assert (await level.read_display_name()).Text == "Level"
        assert (await level.read_data_type()) == ua.NodeId(ua.ObjectIds.Float)
        await wait_until(lambda: _good(level), timeout=15, what="a first value")

        nodes = await _tag_nodes(client)
        assert len(nodes) == 20  # the demo plant
        changes = Changes()
        sub = await client.create_subscription(50, changes)
        await sub.subscribe_data_change(nodes, sampling_interval=1000)
        # once every monitored tag is pushed, nothing is polled any more: count tagValues queries over a window
        # longer than the fastest poll group
        await wait_until(lambda: _no_polls_for(stack, 2.0), timeout=20, what="steady state without tagValues polls")
        assert _metric(stack, "pushed_tags") == len(nodes)
        # a pushed tag is as fresh as WinCC has it: a Read with a short MaxAge asks WinCC nothing
        polls = stack.sim_stats()["requests"].get("POST /graphql tagValues", 0)
        params = ua.ReadParameters()
        params.MaxAge = 100
        params.NodesToRead = [ua.ReadValueId(NodeId=n.nodeid, AttributeId=ua.AttributeIds.Value) for n in nodes]
        for _ in range(3):
            answers = await client.uaclient.read(params)
            assert all(dv.StatusCode.is_good() for dv in answers)
        assert stack.sim_stats()["requests"].get("POST /graphql tagValues", 0) == polls
        stack.sim_control("/_sim/tags", {"set": {"System1.Tank1.LevelSetpoint": 6.25}})
        await wait_until(lambda: changes.seen(SETPOINT, 6.25), timeout=5, what="a pushed change")
        assert stack.sim_stats()["requests"].get("WS subscribe tagValues", 0) >= 1
        await sub.delete()
    finally:
        await client.disconnect()


def _metric(stack, name: str) -> float:
    for line in httpx.get(stack.health_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(f"wincc_bridge_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"wincc_bridge_{name} is not in /metrics")


async def _no_polls_for(stack, seconds: float) -> bool:
    before = stack.sim_stats()["requests"].get("POST /graphql tagValues", 0)
    await asyncio.sleep(seconds)  # a window to count requests in, not a wait for an event
    return stack.sim_stats()["requests"].get("POST /graphql tagValues", 0) == before


async def test_dropped_socket_falls_back_to_polling_then_push_again(stack) -> None:
    client = Client(stack.url_for("operator"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        changes = Changes()
        sub = await client.create_subscription(50, changes)
        await sub.subscribe_data_change([client.get_node(ua.NodeId(SPEED_SP, ns))], sampling_interval=200)
        await wait_until(lambda: changes.values, timeout=10, what="the first notification")
        stack.sim_control("/_sim/faults", {"mode": "ws_down"})
        before = stack.sim_stats()["requests"].get("POST /graphql tagValues", 0)
        await wait_until(
            lambda: stack.sim_stats()["requests"].get("POST /graphql tagValues", 0) > before + 2,
            timeout=10,
            what="the monitored tag polled while the socket is down",
        )
        stack.sim_control("/_sim/tags", {"set": {"System1.Pump1.SpeedSetpoint": 1234.0}})
        await wait_until(lambda: changes.seen(SPEED_SP, 1234.0), timeout=5, what="a change while only HTTP works")
        assert all(code == ua.StatusCodes.Good for _, _, code in changes.values)  # HTTP answers: no Bad status
        stack.sim_control("/_sim/faults", {"mode": "none"})
        stack.sim_control("/_sim/tags", {"set": {"System1.Pump1.SpeedSetpoint": 1250.0}})
        await wait_until(lambda: changes.seen(SPEED_SP, 1250.0), timeout=10, what="the next change")
        await sub.delete()
    finally:
        await client.disconnect()


async def test_write_answers_per_node_codes_from_unified(stack) -> None:
    stack.sim_control("/_sim/faults", {"mode": "write_errors", "tags": {SPEED_SP: {"errorCode": 205}}})
    client = Client(stack.url_for("operator"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        items = [
            (SETPOINT, ua.Variant(4.5, ua.VariantType.Float)),
            (LEVEL, ua.Variant(1.0, ua.VariantType.Float)),
            (SPEED_SP, ua.Variant(10.0, ua.VariantType.Float)),
        ]
        nodes = [
            ua.WriteValue(NodeId=ua.NodeId(n, ns), AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(v))
            for n, v in items
        ]
        results = await client.uaclient.write(ua.WriteParameters(NodesToWrite=nodes))
        assert [r.value for r in results] == [
            ua.StatusCodes.Good,
            ua.StatusCodes.BadNotWritable,
            ua.StatusCodes.BadUserAccessDenied,
        ]
        assert [w["name"] for w in stack.sim_stats()["writes"]][-1:] == [SETPOINT]
    finally:
        stack.sim_control("/_sim/faults", {"mode": "none"})
        await client.disconnect()


async def test_history_raw_from_logging_tag_and_session_expiry(stack) -> None:
    client = Client(stack.url_for("reader"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        level = client.get_node(ua.NodeId(LEVEL, ns))
        assert await level.read_attribute(ua.AttributeIds.Historizing)
        end = datetime.now(UTC)
        values = await level.read_raw_history(end - timedelta(minutes=10), end, return_bounds=False)
        assert len(values) > 5 and all(v.StatusCode.is_good() for v in values)
        stamps = [v.SourceTimestamp for v in values]
        assert stamps == sorted(stamps)
        logins = stack.sim_stats()["requests"].get("POST /graphql login", 0)
        stack.sim_control("/_sim/faults", {"mode": "expire_sessions"})
        values = await level.read_raw_history(end - timedelta(minutes=1), datetime.now(UTC))
        assert values and stack.sim_stats()["requests"].get("POST /graphql login", 0) == logins + 1
    finally:
        await client.disconnect()


async def _good(node) -> bool:
    return (await node.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()


async def test_a_dp_and_a_unified_station_behind_one_endpoint(bridge_stack, tmp_path) -> None:
    from tests.integration.conftest import start_simulator

    v7, v7_port, _ = start_simulator(tmp_path, "dp")
    hmi, hmi_port, _ = start_simulator(tmp_path, "unified")
    try:
        stack = bridge_stack(
            "dp",
            start_sim=False,
            config={
                "sources": [
                    {"name": "v7", "url": f"http://127.0.0.1:{v7_port}"},
                    {"name": "unified", "url": f"http://127.0.0.1:{hmi_port}/graphql", "dialect": "unified"},
                ]
            },
        )
        client = Client(stack.url_for("operator"), timeout=10)
        await client.connect()
        try:
            ns = await client.get_namespace_index(NS_URI)
            old = client.get_node(ua.NodeId("v7/System1.Tank1.Level", ns))
            new = client.get_node(ua.NodeId(f"unified/{SETPOINT}", ns))
            await wait_until(lambda: _good(old), timeout=15, what="the dp station's tag")
            await wait_until(lambda: _good(new), timeout=15, what="the unified station's tag")
            changes = Changes()
            sub = await client.create_subscription(50, changes)
            await sub.subscribe_data_change([new], sampling_interval=1000)
            await wait_until(lambda: changes.values, timeout=10, what="the first notification")
            await new.write_value(ua.DataValue(ua.Variant(3.5, ua.VariantType.Float)))
            written = httpx.get(f"http://127.0.0.1:{hmi_port}/_sim/stats", timeout=5).json()["writes"]
            assert written[-1] == {"name": SETPOINT, "value": 3.5}
            await wait_until(lambda: changes.seen(f"unified/{SETPOINT}", 3.5), timeout=5, what="the written value")
            await sub.delete()
        finally:
            await client.disconnect()
    finally:
        for sim in (v7, hmi):
            sim.terminate()
            sim.wait(10)
