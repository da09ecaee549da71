"""Alarms with several WinCC stations behind one endpoint (`sources:`), over TCP: each station's alarms are
conditions of their own (ids and sources qualified by the station), one station down marks only its conditions
BadCommunicationError, and an Acknowledge reaches the alarm's own station."""

from __future__ import annotations

import httpx
from asyncua import Client, ua

from tests.helpers import wait_until
from tests.integration.conftest import start_simulator
from tests.integration.test_alarms_tcp import Events, ack_args, call, event_filter

S = ua.StatusCodes
O = ua.ObjectIds
NS_URI = "urn:wincc-opcua-bridge:tags"


async def test_two_stations_alarms(bridge_stack, tmp_path) -> None:
    north, north_port, _ = start_simulator(tmp_path, "dp")
    south, south_port, _ = start_simulator(tmp_path, "dp")
    try:
        stack = bridge_stack(
            "dp",
            start_sim=False,
            config={
                "alarms": {"poll_ms": 300},
                "sources": [
                    {"name": "north", "url": f"http://127.0.0.1:{north_port}"},
                    {"name": "south", "url": f"http://127.0.0.1:{south_port}"},
                ],
            },
        )
        for port in (north_port, south_port):
            httpx.post(f"http://127.0.0.1:{port}/_sim/alarms", json={"raise": "1001"}, timeout=5).raise_for_status()
        client = Client(stack.url_for("operator"), timeout=10)
        await client.connect()
        try:
            tag_ns = await client.get_namespace_index(NS_URI)
            events = Events()
            sub = await client.create_subscription(100, events)
            item = await sub.subscribe_events(O.Server, evfilter=event_filter())
            await client.uaclient.call(
                [
                    ua.CallMethodRequest(
                        ObjectId=ua.NodeId(O.ConditionType),
                        MethodId=ua.NodeId(O.ConditionType_ConditionRefresh),
                        InputArguments=[ua.Variant(sub.subscription_id, ua.VariantType.UInt32)],
                    )
                ]
            )
            await wait_until(
                lambda: events.of(item, WinCCAlarmId="north/1001") and events.of(item, WinCCAlarmId="south/1001"),
                timeout=15,
                what="both stations' alarm",
            )
            north_alarm = events.of(item, WinCCAlarmId="north/1001")[-1]
            assert north_alarm["SourceNode"] == ua.NodeId("north/System1.Tank1.Level", tag_ns)

            httpx.post(f"http://127.0.0.1:{south_port}/_sim/faults", json={"mode": "down"}, timeout=5)
            bad = await wait_until(
                lambda: [
                    e
                    for e in events.of(item, WinCCAlarmId="south/1001")
                    if e["Quality"].value == S.BadCommunicationError
                ],
                timeout=20,
            )
            assert bad[-1]["Retain"] is True
            assert all(e["Quality"].is_good() for e in events.of(item, WinCCAlarmId="north/1001"))
            assert not events.of(item, WinCCAlarmId="north/1001", Retain=False)  # not taken as gone

            acknowledge = ua.NodeId(O.AcknowledgeableConditionType_Acknowledge)
            status = await call(
                client, north_alarm["ConditionId"], acknowledge, *ack_args(north_alarm["EventId"], "north only")
            )
            assert status.is_good()
            stats = httpx.get(f"http://127.0.0.1:{north_port}/_sim/stats", timeout=5).json()
            assert {"id": "1001", "user": "operator", "comment": "north only"} in stats["acknowledged"]
            await sub.delete()
        finally:
            await client.disconnect()
    finally:
        for sim in (north, south):
            if sim.poll() is None:
                sim.terminate()
                sim.wait(10)
