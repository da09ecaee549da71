"""node-opcua, an independent A&C client, against the bridge's alarms in both dialects (tests/interop/alarms.js):
event fields, the notifier chain, Acknowledge (reader refused, operator Good with user and comment reaching the
simulator, the second refused), AddComment, ConditionRefresh, HistoryReadEvent with a where clause, WinCC down; and
a unified station's alarms pushed (activeAlarms subscription) with Acknowledge reaching it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import Client, ua

pytestmark = pytest.mark.interop

NS_URI = "urn:wincc-opcua-bridge:tags"
POLL_MS = 300
FIELDS = [
    "EventId",
    "EventType",
    "SourceNode",
    "SourceName",
    "Time",
    "Message",
    "Severity",
    "ConditionName",
    "ConditionClassName",
    "Retain",
    "EnabledState.Id",
    "ActiveState.Id",
    "AckedState.Id",
    "Quality",
    "Comment",
    "ClientUserId",
    "WinCCAlarmId",
    "ConditionId",
]


@pytest.fixture(scope="module", params=["dp", "restservice"])
def stack(request, bridge_stack):
    config: dict[str, Any] = {"alarms": {"poll_ms": POLL_MS}}
    if request.param == "restservice":
        config["wincc"] = {
            "acknowledge": {
                "path": "/_site/alarms/{id}/acknowledge",
                "body": {"user": "{user}", "comment": "{comment}"},
            }
        }
    return bridge_stack(request.param, config=config)


def folders(stack) -> tuple[str, str]:
    """The folders of Tank1's level and of the reactor temperature, as NodeId strings (looked up with asyncua)."""

    async def find() -> tuple[str, str]:
        async with Client(stack.url_for("reader"), timeout=10) as client:
            ns = (await client.get_namespace_array()).index(NS_URI)
            out = []
            for dp_name in ("System1.Tank1.Level", "System1.Reactor.Temperature"):
                name = dp_name if stack.dialect == "dp" else dp_name.removeprefix("System1.").replace(".", "_")
                refs = await client.get_node(ua.NodeId(name, ns)).get_references(
                    ua.ObjectIds.Organizes, ua.BrowseDirection.Inverse
                )
                folder = refs[0].NodeId
                out.append(f"nsu={NS_URI}/folders;s={folder.Identifier}")
            return out[0], out[1]

    return asyncio.run(find())


def spec(stack, steps, user="operator"):
    return {"endpoint": stack.endpoint, "user": user, "password": stack.users[user], "steps": steps}


def alarm(stack, body: dict[str, Any]) -> dict[str, Any]:
    return {"op": "http", "url": stack.sim_base + "/_sim/alarms", "body": body}


def test_alarms_with_node_opcua(stack, node_client) -> None:
    tank, reactor = folders(stack)
    wait = POLL_MS + 500 + 100  # poll + 500 ms + one publishing interval
    out = node_client(
        spec(
            stack,
            [
                {"op": "eventMonitor", "name": "server", "nodeId": "i=2253", "fields": FIELDS},
                {"op": "eventMonitor", "name": "tank", "nodeId": tank, "fields": FIELDS},
                {"op": "eventMonitor", "name": "reactor", "nodeId": reactor, "fields": FIELDS},
                alarm(stack, {"raise": "1001"}),
                {
                    "op": "waitEvent",
                    "name": "server",
                    "match": {"WinCCAlarmId": "1001", "Retain": True},
                    "timeoutMs": wait,
                },
                {"op": "waitEvent", "name": "tank", "match": {"WinCCAlarmId": "1001"}, "timeoutMs": 5000},
                alarm(stack, {"raise": "1002"}),
                {"op": "waitEvent", "name": "server", "match": {"WinCCAlarmId": "1002"}, "timeoutMs": 10000},
                {"op": "waitEvent", "name": "reactor", "match": {"WinCCAlarmId": "1002"}, "timeoutMs": 5000},
                {"op": "events", "name": "tank"},
                {"op": "acknowledge", "name": "server", "alarmId": "1001", "comment": "node checked"},
                {"op": "waitEvent", "name": "server", "match": {"WinCCAlarmId": "1001", "AckedState.Id": True}},
                {"op": "acknowledge", "name": "server", "alarmId": "1001", "comment": "again"},
                {"op": "acknowledge", "name": "server", "alarmId": "1002", "comment": "own node", "instance": True},
                {"op": "addComment", "name": "server", "alarmId": "1001", "comment": "node note"},
                {"op": "waitEvent", "name": "server", "match": {"WinCCAlarmId": "1001", "Comment": "node note"}},
                {"op": "refresh"},
                {"op": "waitEvent", "name": "server", "match": {"EventType": "ns=0;i=2788"}},
                {"op": "events", "name": "server"},
            ],
        )
    )
    errors = [o for o in out if isinstance(o, dict) and ("error" in o or o.get("timeout"))]
    assert not errors, errors
    came = out[4]["event"]
    assert came["EventType"] == "ns=0;i=2915" and came["Severity"] == 800 and came["Message"] == "Tank 1 level high"
    assert came["ConditionName"] == "Alarm 1001" and came["ConditionClassName"] == "Alarm"
    assert came["ActiveState.Id"] is True and came["AckedState.Id"] is False and came["EnabledState.Id"] is True
    assert came["Quality"] == "Good" and came["ConditionId"].endswith("s=1001") and len(came["EventId"]) == 32
    assert not [e for e in out[9]["events"] if e["WinCCAlarmId"] == "1002"]  # the tank folder saw only its alarm
    ack, again, own, comment = out[10], out[12], out[13], out[14]
    assert (ack["status"], again["status"], own["status"], comment["status"]) == (
        "Good",
        "BadConditionBranchAlreadyAcked",
        "Good",
        "Good",
    )
    acked = out[11]["event"]
    assert acked["ClientUserId"] == "operator" and acked["Comment"] == "node checked"
    recorded = stack.sim_stats()["acknowledged"]
    assert {"id": "1001", "user": "operator", "comment": "node checked"} in recorded
    assert {"id": "1002", "user": "operator", "comment": "own node"} in recorded
    events = out[18]["events"]
    start = max(i for i, e in enumerate(events) if e["EventType"] == "ns=0;i=2787")
    replay = events[start + 1 :]
    assert replay[-1]["EventType"] == "ns=0;i=2788"
    assert {e["WinCCAlarmId"] for e in replay[:-1]} == {"1001", "1002"} and all(e["Retain"] for e in replay[:-1])


def test_reader_refused_history_and_wincc_down(stack, node_client) -> None:
    now = datetime.now(UTC)
    out = node_client(
        spec(
            stack,
            [
                {"op": "eventMonitor", "name": "server", "nodeId": "i=2253", "fields": FIELDS},
                alarm(stack, {"raise": "1003"}),
                {
                    "op": "waitEvent",
                    "name": "server",
                    "match": {"WinCCAlarmId": "1003", "ActiveState.Id": True},
                    "timeoutMs": 10000,
                },
                {"op": "acknowledge", "name": "server", "alarmId": "1003", "comment": "reader tries"},
                {
                    "op": "historyEvents",
                    "nodeId": "i=2253",
                    "start": (now - timedelta(hours=1)).isoformat(),
                    "end": (now + timedelta(minutes=5)).isoformat(),
                    "fields": FIELDS,
                    "ofType": "i=2915",
                    "severityAtLeast": 250,
                },
                {"op": "http", "url": stack.sim_base + "/_sim/faults", "body": {"mode": "down"}},
                {
                    "op": "waitEvent",
                    "name": "server",
                    "match": {"WinCCAlarmId": "1003", "Quality": "BadCommunicationError"},
                    "timeoutMs": 20000,
                },
                alarm(stack, {"clear": "1003"}),
                {"op": "http", "url": stack.sim_base + "/_sim/faults", "method": "DELETE"},
                {
                    "op": "waitEvent",
                    "name": "server",
                    "match": {"WinCCAlarmId": "1003", "ActiveState.Id": False, "Quality": "Good"},
                    "timeoutMs": 20000,
                },
            ],
            user="reader",
        )
    )
    errors = [o for o in out if isinstance(o, dict) and ("error" in o or o.get("timeout"))]
    assert not errors, errors
    assert out[3]["status"] == "BadUserAccessDenied"
    history = out[4]
    assert history["status"] == "Good" and history["events"]
    assert {e["WinCCAlarmId"] for e in history["events"]} <= {"1001", "1002", "1003"}
    assert any(e["WinCCAlarmId"] == "1003" for e in history["events"])
    assert all(e["Severity"] >= 250 and e["EventType"] == "ns=0;i=2915" for e in history["events"])
    down = out[6]["event"]
    assert down["Retain"] is True and down["ActiveState.Id"] is True
    assert out[9]["event"]["Retain"] is True  # went while WinCC was down, still unacknowledged


UNIFIED_1001 = "HMI_RT_1::System1.Tank1.Level:Alarm_1001#1"


def test_unified_alarms_pushed_to_node_opcua(bridge_stack, node_client) -> None:
    """A unified station's alarms reach node-opcua by push (poll_ms is a minute) and Acknowledge reaches WinCC."""
    stack = bridge_stack("unified", config={"alarms": {"poll_ms": 60000}})
    out = node_client(
        spec(
            stack,
            [
                {"op": "eventMonitor", "name": "server", "nodeId": "i=2253", "fields": FIELDS},
                alarm(stack, {"raise": "1001"}),
                {"op": "waitEvent", "name": "server", "match": {"WinCCAlarmId": UNIFIED_1001}, "timeoutMs": 3000},
                {"op": "acknowledge", "name": "server", "alarmId": UNIFIED_1001, "comment": "node saw it"},
                {
                    "op": "waitEvent",
                    "name": "server",
                    "match": {"WinCCAlarmId": UNIFIED_1001, "AckedState.Id": True},
                    "timeoutMs": 3000,
                },
                alarm(stack, {"clear": "1001"}),
                {
                    "op": "waitEvent",
                    "name": "server",
                    "match": {"WinCCAlarmId": UNIFIED_1001, "Retain": False},
                    "timeoutMs": 3000,
                },
            ],
        )
    )
    errors = [o for o in out if isinstance(o, dict) and ("error" in o or o.get("timeout"))]
    assert not errors, errors
    came = out[2]["event"]
    assert came["Message"] == "Tank 1 level high" and came["ActiveState.Id"] is True and came["Quality"] == "Good"
    assert out[3]["status"] == "Good"
    assert out[6]["event"]["ActiveState.Id"] is False and out[6]["event"]["AckedState.Id"] is True
    assert stack.sim_stats()["requests"].get("WS subscribe activeAlarms", 0) >= 1
    assert [a["id"] for a in stack.sim_stats()["acknowledged"]] == [UNIFIED_1001.removesuffix("#1")]
