"""Alarms pushed by WinCC Unified (its `activeAlarms` subscription) as OPC UA conditions, over real TCP: simulator
and bridge in their own processes, an asyncua client in this one. `alarms.poll_ms` is a minute, so an alarm that
reaches the client within seconds was pushed, not polled:
- a raised alarm reaches the client's event subscription as it happens; at steady state no activeAlarms query is
  sent while alarms come, are acknowledged and go;
- Acknowledge goes to WinCC as acknowledgeAlarms and the pushed state agrees;
- the socket drops: the alarms are polled (once at the drop, then every poll_ms), an alarm cleared meanwhile is
  cleared by the first notification after the reconnect (the whole list, reconciled), then pushed again;
- a unified station among `sources:` pushes its alarms with qualified ids; Acknowledge reaches that station.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asyncua import ua

from tests.helpers import wait_until
from tests.integration.conftest import start_simulator
from tests.integration.test_alarms_tcp import Events, ack_args, call, event_filter, ns, session

S = ua.StatusCodes
O = ua.ObjectIds
PUBLISH_MS = 100
LEVEL = "HMI_RT_1::System1.Tank1.Level"
ALARM_1001 = LEVEL + ":Alarm_1001#1"
ALARM_1002 = "HMI_RT_1::System1.Reactor.Temperature:Alarm_1002#1"
ALARM_1003 = "HMI_RT_1::System1.Pump1.Running:Alarm_1003#1"
QUERIES = "POST /graphql activeAlarms"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("unified", config={"alarms": {"poll_ms": 60000}})


def queries(stack) -> int:
    return int(stack.sim_stats()["requests"].get(QUERIES, 0))


async def _pushed_live(stack) -> bool:
    """The bridge's alarm push is live: subscribed, and the active list read once after it (no more queries)."""
    metrics = httpx.get(stack.health_url + "/metrics", timeout=5).text.splitlines()
    return "wincc_bridge_alarm_push_live 1.0" in metrics


async def test_alarms_are_pushed_not_polled_and_acknowledge_reaches_wincc(stack) -> None:
    async with session(stack, "operator") as op:
        alarms_ns = await ns(op, "/alarms")
        events = Events()
        sub = await op.create_subscription(PUBLISH_MS, events)
        on_server = await sub.subscribe_events(ua.ObjectIds.Server, evfilter=event_filter())
        await wait_until(lambda: _pushed_live(stack), timeout=15, what="the bridge subscribed activeAlarms")
        before = queries(stack)
        stack.sim_control("/_sim/alarms", {"raise": "1001"})
        came = (
            await wait_until(
                lambda: events.of(on_server, WinCCAlarmId=ALARM_1001, **{"ActiveState/Id": True}),
                timeout=3,  # poll_ms is 60 s: only the push can bring it this soon
                what="a raised alarm pushed to the client",
            )
        )[-1]
        assert came["Message"].Text == "Tank 1 level high" and came["Severity"] == 800
        assert came["SourceName"] == LEVEL and came["ConditionId"] == ua.NodeId(ALARM_1001, alarms_ns)

        # Acknowledge: acknowledgeAlarms in WinCC, the condition acked with the operator's comment
        ack = ua.NodeId(O.AcknowledgeableConditionType_Acknowledge)
        status = await call(op, ua.NodeId(ALARM_1001, alarms_ns), ack, *ack_args(came["EventId"], "seen"))
        assert status.value == S.Good
        assert {"id": ALARM_1001.removesuffix("#1"), "user": "opcua", "comment": ""} in stack.sim_stats()[
            "acknowledged"
        ]
        await wait_until(
            lambda: events.of(on_server, WinCCAlarmId=ALARM_1001, **{"AckedState/Id": True}), timeout=3, what="acked"
        )
        stack.sim_control("/_sim/alarms", {"clear": "1001"})
        gone = (
            await wait_until(
                lambda: events.of(on_server, WinCCAlarmId=ALARM_1001, Retain=False), timeout=3, what="cleared"
            )
        )[-1]
        assert gone["ActiveState/Id"] is False and gone["AckedState/Id"] is True

        # steady state: alarms come and go, nothing polls
        stack.sim_control("/_sim/alarms", {"raise": "1002"})
        await wait_until(lambda: events.of(on_server, WinCCAlarmId=ALARM_1002), timeout=3, what="1002 pushed")
        await asyncio.sleep(2.0)  # a window to count requests in, not a wait for an event
        assert queries(stack) == before
        await sub.delete()


async def test_dropped_socket_polls_then_reconciles_and_pushes_again(stack) -> None:
    async with session(stack, "operator") as op:
        events = Events()
        sub = await op.create_subscription(PUBLISH_MS, events)
        on_server = await sub.subscribe_events(ua.ObjectIds.Server, evfilter=event_filter())
        stack.sim_control("/_sim/alarms", {"raise": "1003"})
        await wait_until(lambda: events.of(on_server, WinCCAlarmId=ALARM_1003), timeout=5, what="1003 active")
        before = queries(stack)
        stack.sim_control("/_sim/faults", {"mode": "ws_down"})
        try:
            await wait_until(lambda: queries(stack) > before, timeout=5, what="alarms polled once the push is down")
            stack.sim_control("/_sim/alarms", {"clear": "1003"})  # goes while nothing pushes
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")
        went = (
            await wait_until(
                lambda: events.of(on_server, WinCCAlarmId=ALARM_1003, **{"ActiveState/Id": False}),
                timeout=10,  # the reconnect's first notification, not the next poll (a minute away)
                what="the alarm that went during the drop cleared after the reconnect",
            )
        )[-1]
        assert went["Quality"].is_good() and went["Retain"] is True  # went, still unacknowledged
        assert len(events.of(on_server, WinCCAlarmId=ALARM_1003, **{"ActiveState/Id": False})) == 1
        polled = queries(stack)
        stack.sim_control("/_sim/alarms", {"raise": "1001"})
        await wait_until(
            lambda: events.of(on_server, WinCCAlarmId=ALARM_1001, **{"ActiveState/Id": True}),
            timeout=3,
            what="pushed again after the reconnect",
        )
        assert queries(stack) == polled
        await sub.delete()


async def test_a_unified_station_among_sources_pushes_its_alarms_qualified(bridge_stack, tmp_path) -> None:
    v7, v7_port, _ = start_simulator(tmp_path, "dp")
    hmi, hmi_port, _ = start_simulator(tmp_path, "unified")
    hmi_base = f"http://127.0.0.1:{hmi_port}"
    try:
        stack = bridge_stack(
            "dp",
            start_sim=False,
            config={
                "alarms": {"poll_ms": 60000},
                "sources": [
                    {"name": "v7", "url": f"http://127.0.0.1:{v7_port}"},
                    {"name": "hmi", "url": hmi_base + "/graphql", "dialect": "unified"},
                ],
            },
        )
        async with session(stack, "operator") as op:
            tag_ns = await ns(op)
            events = Events()
            sub = await op.create_subscription(PUBLISH_MS, events)
            on_server = await sub.subscribe_events(ua.ObjectIds.Server, evfilter=event_filter())
            await wait_until(lambda: _pushed_live(stack), timeout=15, what="the unified station's alarm push live")
            httpx.post(hmi_base + "/_sim/alarms", json={"raise": "1001"}, timeout=5).raise_for_status()
            came = (
                await wait_until(
                    lambda: events.of(on_server, WinCCAlarmId="hmi/" + ALARM_1001), timeout=3, what="pushed, qualified"
                )
            )[-1]
            assert came["SourceNode"] == ua.NodeId("hmi/" + LEVEL, tag_ns)
            ack = ua.NodeId(O.AcknowledgeableConditionType_Acknowledge)
            assert (await call(op, came["ConditionId"], ack, *ack_args(came["EventId"], "hmi"))).is_good()
            acked = httpx.get(hmi_base + "/_sim/stats", timeout=5).json()["acknowledged"]
            assert [a["id"] for a in acked] == [ALARM_1001.removesuffix("#1")]
            await wait_until(
                lambda: events.of(on_server, WinCCAlarmId="hmi/" + ALARM_1001, **{"AckedState/Id": True}), timeout=3
            )
            await sub.delete()
    finally:
        for sim in (v7, hmi):
            sim.terminate()
            sim.wait(10)
