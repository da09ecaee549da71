"""Alarms & Conditions over real TCP (issue 19), both dialects: the simulator's alarms as OPC UA conditions seen by
an asyncua client in this process, with simulator and bridge in their own processes.

Per dialect, in order on one stack (each test builds on the plant state the one before left):
- a forced alarm arrives within alarms.poll_ms + 500 ms (plus one publishing interval) with every field a client
  filters on, matching the simulator's alarm; it reaches the Server object and its own folder, and a subscription
  on another folder sees nothing of it (that folder gets its own alarm instead);
- the condition is a node under its source tag (HasCondition) whose state variables agree with the event;
- Acknowledge: a reader is refused, a stale EventId is BadEventIdUnknown, the operator's acknowledge reaches the
  simulator with user and comment, the second is BadConditionBranchAlreadyAcked; through the instance's own method
  node too; each leaves an audit event on the Server object and an audit log line;
- AddComment, then went + acked = Retain false; ConditionRefresh replays only retained conditions between
  RefreshStart and RefreshEnd and only to the calling subscription; ConditionRefresh2 to one item;
- HistoryReadEvent returns the simulator's alarm log filtered by a where clause, paged;
- WinCC down: conditions stay with Quality BadCommunicationError (an event says so); an alarm that goes meanwhile
  is reconciled by the first poll after recovery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import wait_until
from tests.integration.conftest import WINCC_PASSWORD

S = ua.StatusCodes
O = ua.ObjectIds
POLL_MS = 300
PUBLISH_MS = 100
FIELDS = [
    "EventId",
    "EventType",
    "SourceNode",
    "SourceName",
    "Time",
    "ReceiveTime",
    "Message",
    "Severity",
    "ConditionClassId",
    "ConditionClassName",
    "ConditionName",
    "BranchId",
    "Retain",
    "EnabledState",
    "EnabledState/Id",
    "Quality",
    "LastSeverity",
    "Comment",
    "ClientUserId",
    "AckedState",
    "AckedState/Id",
    "ActiveState",
    "ActiveState/Id",
    "WinCCAlarmId",
    "ActionTimeStamp",
    "Status",
    "ConditionEventId",
]
NS_URI = "urn:wincc-opcua-bridge:tags"
# the simulator's alarms: id -> (dp tag, text, class, priority)
ALARMS = {
    "1001": ("System1.Tank1.Level", "Tank 1 level high", "Alarm", 800),
    "1002": ("System1.Reactor.Temperature", "Reactor temperature high", "Alarm", 900),
    "1003": ("System1.Pump1.Running", "Pump 1 not running", "Warning", 300),
}


def event_filter(where: ua.ContentFilter | None = None) -> ua.EventFilter:
    clauses = []
    for name in FIELDS:
        op = ua.SimpleAttributeOperand()
        op.TypeDefinitionId = ua.NodeId(O.BaseEventType)
        op.BrowsePath = [ua.QualifiedName(part, 0) for part in name.split("/")]
        op.AttributeId = ua.AttributeIds.Value
        clauses.append(op)
    cond = ua.SimpleAttributeOperand()
    cond.TypeDefinitionId = ua.NodeId(O.ConditionType)
    cond.AttributeId = ua.AttributeIds.NodeId  # ConditionId (Part 9, 5.5.2)
    clauses.append(cond)
    return ua.EventFilter(SelectClauses=clauses, WhereClause=where or ua.ContentFilter())


class Events:
    """A subscription handler that keeps every event as {field: value}."""

    def __init__(self) -> None:
        self.by_handle: dict[int, list[dict[str, Any]]] = {}

    def event_notification(self, event: Any) -> None:
        fields = {k: v.Value for k, v in event.get_event_props_as_fields_dict().items()}
        fields["ConditionId"] = fields.pop("NodeId", None)
        self.by_handle.setdefault(event.server_handle, []).append(fields)

    def of(self, handle: int, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.by_handle.get(handle, []) if all(e.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="module", params=["dp", "restservice"])
def stack(request, bridge_stack):
    config: dict[str, Any] = {"alarms": {"poll_ms": POLL_MS}, "history": {"max_values_per_read": 2}}
    if request.param == "restservice":
        config["wincc"] = {
            "acknowledge": {
                "method": "POST",
                "path": "/_site/alarms/{id}/acknowledge",
                "body": {"user": "{user}", "comment": "{comment}"},
            }
        }
    return bridge_stack(request.param, config=config)


@asynccontextmanager
async def session(stack, user: str | None) -> AsyncIterator[Client]:
    client = Client(stack.url_for(user), timeout=10)
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


def sim_alarm(stack, **body: Any) -> None:
    stack.sim_control("/_sim/alarms", body)


def tag_name(stack, dp_name: str) -> str:
    """The tag's name in the stack's dialect (restservice names replace dots after System1. with '_')."""
    if stack.dialect == "dp":
        return dp_name
    return dp_name.removeprefix("System1.").replace(".", "_")


async def folder_of(client: Client, tag_node: ua.NodeId) -> ua.NodeId:
    refs = await client.get_node(tag_node).get_references(O.Organizes, ua.BrowseDirection.Inverse)
    return refs[0].NodeId


async def ns(client: Client, suffix: str = "") -> int:
    return (await client.get_namespace_array()).index(NS_URI + suffix)


async def call(client: Client, object_id: ua.NodeId, method_id: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
    result = await client.uaclient.call(
        [ua.CallMethodRequest(ObjectId=object_id, MethodId=method_id, InputArguments=list(args))]
    )
    return result[0].StatusCode


def ack_args(event_id: bytes, comment: str) -> tuple[ua.Variant, ua.Variant]:
    return (
        ua.Variant(event_id, ua.VariantType.ByteString),
        ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText),
    )


async def test_alarm_lifecycle(stack) -> None:
    async with session(stack, "operator") as op, session(stack, "reader") as reader:
        tag_ns, alarms_ns = await ns(op), await ns(op, "/alarms")
        tank = ua.NodeId(tag_name(stack, ALARMS["1001"][0]), tag_ns)
        reactor = ua.NodeId(tag_name(stack, ALARMS["1002"][0]), tag_ns)
        tank_folder, reactor_folder = await folder_of(op, tank), await folder_of(op, reactor)
        assert tank_folder != reactor_folder
        events = Events()
        sub = await op.create_subscription(PUBLISH_MS, events)
        on_server = await sub.subscribe_events(ua.ObjectIds.Server, evfilter=event_filter())
        on_tank = await sub.subscribe_events(tank_folder, evfilter=event_filter())
        on_reactor = await sub.subscribe_events(reactor_folder, evfilter=event_filter())

        # ---- a new alarm arrives with every field, on the notifier chain of its source only ----
        sim_alarm(stack, **{"raise": "1001"})
        came = (
            await wait_until(
                lambda: events.of(on_server, WinCCAlarmId="1001", Retain=True),
                timeout=(POLL_MS + 500 + PUBLISH_MS) / 1000,
                what="alarm 1001 within poll + 500 ms",
            )
        )[-1]
        wincc = None
        if stack.dialect == "dp":
            answer = httpx.get(stack.sim_base + "/api/alerts/active", auth=("opcua", WINCC_PASSWORD), timeout=5)
            wincc = next(a for a in answer.json()["alerts"] if a["id"] == "1001")
        cond_id = ua.NodeId("1001", alarms_ns)
        assert came["EventType"] == ua.NodeId(O.AlarmConditionType)
        assert came["SourceNode"] == tank and came["SourceName"] == tank.Identifier
        assert came["Message"].Text == "Tank 1 level high" and came["Severity"] == 800
        assert came["ConditionName"] == "Alarm 1001" and came["ConditionClassName"].Text == "Alarm"
        assert came["ConditionClassId"] == ua.NodeId(O.ProcessConditionClassType)
        assert came["BranchId"] == ua.NodeId() and came["ConditionId"] == cond_id
        assert came["EnabledState/Id"] is True and came["ActiveState/Id"] is True and came["AckedState/Id"] is False
        assert came["ActiveState"].Text == "Active" and came["AckedState"].Text == "Unacknowledged"
        assert came["Quality"].is_good() and came["WinCCAlarmId"] == "1001" and len(came["EventId"]) == 16
        assert came["ReceiveTime"] >= came["Time"] - timedelta(seconds=1)
        if wincc is not None:
            assert came["Time"].replace(tzinfo=UTC).isoformat().startswith(wincc["timestamp"][:19])
        await wait_until(lambda: events.of(on_tank, WinCCAlarmId="1001"), timeout=5)
        sim_alarm(stack, **{"raise": "1002"})
        await wait_until(lambda: events.of(on_server, WinCCAlarmId="1002"), timeout=10)
        await wait_until(lambda: events.of(on_reactor, WinCCAlarmId="1002"), timeout=5)
        assert not events.of(on_reactor, WinCCAlarmId="1001") and not events.of(on_tank, WinCCAlarmId="1002")

        # ---- the condition node under its tag agrees with the event ----
        refs = await op.get_node(tank).get_references(O.HasCondition)
        assert [r.NodeId for r in refs] == [cond_id]
        cond = op.get_node(cond_id)
        assert await (await cond.get_child(["0:AckedState", "0:Id"])).read_value() is False
        assert await (await cond.get_child([f"{alarms_ns}:WinCCAlarmId"])).read_value() == "1001"
        assert (await cond.read_type_definition()) == ua.NodeId(O.AlarmConditionType)
        # the notifier chain is browsable: Server -> WinCC root -> ... -> the tank's folder -> the tag
        forward = ua.BrowseDirection.Forward
        notifies = await op.get_node(ua.ObjectIds.Server).get_references(O.HasNotifier, forward)
        root = notifies[0].NodeId
        sources = await op.get_node(tank_folder).get_references(O.HasEventSource, forward, includesubtypes=False)
        assert [r.NodeId for r in sources] == [tank]
        assert await op.get_node(root).read_event_notifier()
        assert await op.get_node(tank_folder).read_event_notifier()
        assert await op.get_node(O.HistoryServerCapabilities_AccessHistoryEventsCapability).read_value() is True

        # ---- Acknowledge: reader refused, stale EventId, Good with user and comment, then already acked ----
        ack = ua.NodeId(O.AcknowledgeableConditionType_Acknowledge)
        assert (await call(reader, cond_id, ack, *ack_args(came["EventId"], "no"))).value == S.BadUserAccessDenied
        assert (await call(op, cond_id, ack, *ack_args(b"\x00" * 16, "stale"))).value == S.BadEventIdUnknown
        assert (await call(op, cond_id, ack, *ack_args(came["EventId"], "checked level"))).value == S.Good
        assert {"id": "1001", "user": "operator", "comment": "checked level"} in stack.sim_stats()["acknowledged"]
        acked = (
            await wait_until(lambda: events.of(on_server, WinCCAlarmId="1001", **{"AckedState/Id": True}), timeout=5)
        )[-1]
        assert acked["Comment"].Text == "checked level" and acked["ClientUserId"] == "operator"
        assert acked["Retain"] is True and acked["EventId"] != came["EventId"]
        again = await call(op, cond_id, ack, *ack_args(acked["EventId"], "again"))
        assert again.value == S.BadConditionBranchAlreadyAcked
        audits = await wait_until(
            lambda: [
                e
                for e in events.of(on_server, EventType=ua.NodeId(O.AuditConditionAcknowledgeEventType))
                if e["ClientUserId"] == "operator"
            ],
            timeout=5,
        )
        assert {a["Status"] for a in audits} == {True, False}
        assert "acknowledge user=operator alarm='1001' comment='checked level' result=Good" in stack.log_text()
        assert "acknowledge user=reader alarm='1001' comment='no' result=BadUserAccessDenied" in stack.log_text()

        # through the instance's own method node (UaExpert calls this one too)
        r2 = events.of(on_server, WinCCAlarmId="1002")[-1]
        own = ua.NodeId("1002#Acknowledge", alarms_ns)
        assert (
            await call(reader, ua.NodeId("1002", alarms_ns), own, *ack_args(r2["EventId"], "x"))
        ).value == S.BadUserAccessDenied
        assert (await call(op, ua.NodeId("1002", alarms_ns), own, *ack_args(r2["EventId"], "own node"))).value == S.Good
        assert {"id": "1002", "user": "operator", "comment": "own node"} in stack.sim_stats()["acknowledged"]

        # ---- AddComment ----
        comment = ua.NodeId(O.ConditionType_AddComment)
        assert (await call(op, cond_id, comment, *ack_args(acked["EventId"], "level sensor replaced"))).value == S.Good
        await wait_until(
            lambda: [
                e for e in events.of(on_server, WinCCAlarmId="1001") if e["Comment"].Text == "level sensor replaced"
            ],
            timeout=5,
        )
        await wait_until(lambda: events.of(on_server, EventType=ua.NodeId(O.AuditConditionCommentEventType)), timeout=5)

        # ---- went + acked: Retain false, the condition is forgotten; went unacked stays retained ----
        sim_alarm(stack, clear="1001")
        gone = (await wait_until(lambda: events.of(on_server, WinCCAlarmId="1001", Retain=False), timeout=10))[-1]
        assert gone["ActiveState/Id"] is False and gone["AckedState/Id"] is True
        assert (await op.get_node(tank).get_references(O.HasCondition)) == []
        sim_alarm(stack, **{"raise": "1003"})
        sim_alarm(stack, clear="1003")
        went = (
            await wait_until(lambda: events.of(on_server, WinCCAlarmId="1003", **{"ActiveState/Id": False}), timeout=10)
        )[-1]
        assert went["Retain"] is True and went["AckedState/Id"] is False

        # ---- ConditionRefresh: only retained conditions, only to the calling subscription ----
        other_events = Events()
        other = await op.create_subscription(PUBLISH_MS, other_events)
        other_item = await other.subscribe_events(ua.ObjectIds.Server, evfilter=event_filter())
        before = len(events.by_handle[on_server])
        refresh = ua.NodeId(O.ConditionType_ConditionRefresh)
        status = await call(
            op, ua.NodeId(O.ConditionType), refresh, ua.Variant(sub.subscription_id, ua.VariantType.UInt32)
        )
        assert status.is_good()
        end_type = ua.NodeId(O.RefreshEndEventType)
        await wait_until(lambda: events.of(on_server, EventType=end_type), timeout=5)
        replay = events.by_handle[on_server][before:]
        types = [e["EventType"] for e in replay]
        assert types[0] == ua.NodeId(O.RefreshStartEventType) and types[-1] == end_type
        assert sorted(e["WinCCAlarmId"] for e in replay[1:-1]) == ["1002", "1003"]  # 1001 is forgotten
        assert all(e["Retain"] for e in replay[1:-1])
        assert not other_events.of(other_item, EventType=end_type)
        # a reader may refresh, but not someone else's subscription
        assert (
            await call(
                reader, ua.NodeId(O.ConditionType), refresh, ua.Variant(sub.subscription_id, ua.VariantType.UInt32)
            )
        ).value == S.BadSubscriptionIdInvalid
        status2 = await call(
            op,
            ua.NodeId(O.ConditionType),
            ua.NodeId(O.ConditionType_ConditionRefresh2),
            ua.Variant(sub.subscription_id, ua.VariantType.UInt32),
            ua.Variant(on_tank, ua.VariantType.UInt32),
        )
        assert status2.is_good()
        await wait_until(lambda: events.of(on_tank, EventType=end_type), timeout=5)
        assert len(events.of(on_server, EventType=end_type)) == 1  # the Server item was not refreshed again
        await sub.delete()
        await other.delete()
        metrics = httpx.get(stack.health_url + "/metrics", timeout=5).text
        assert 'wincc_bridge_alarm_acknowledges_total{result="Good"} 2.0' in metrics
        assert 'wincc_bridge_alarm_acknowledges_total{result="BadConditionBranchAlreadyAcked"} 1.0' in metrics
        assert "wincc_bridge_alarms_active 1.0" in metrics  # 1002 (1001 went, 1003 went unacked)
        assert "wincc_bridge_alarms_unacknowledged 1.0" in metrics  # 1003


async def test_history_read_event_with_where_clause(stack) -> None:
    async with session(stack, "reader") as client:
        for _ in range(2):
            sim_alarm(stack, **{"raise": "1002"})
            sim_alarm(stack, clear="1002")
        sim_alarm(stack, **{"raise": "1001"})
        sim_alarm(stack, clear="1001")
        severity = ua.SimpleAttributeOperand(
            TypeDefinitionId=ua.NodeId(O.BaseEventType),
            BrowsePath=[ua.QualifiedName("Severity", 0)],
            AttributeId=ua.AttributeIds.Value,
        )
        where = ua.ContentFilter(
            Elements=[
                ua.ContentFilterElement(
                    FilterOperator=ua.FilterOperator.And,
                    FilterOperands=[ua.ElementOperand(Index=1), ua.ElementOperand(Index=2)],
                ),
                ua.ContentFilterElement(
                    FilterOperator=ua.FilterOperator.OfType,
                    FilterOperands=[ua.LiteralOperand(Value=ua.Variant(ua.NodeId(O.AlarmConditionType)))],
                ),
                ua.ContentFilterElement(
                    FilterOperator=ua.FilterOperator.GreaterThanOrEqual,
                    FilterOperands=[severity, ua.LiteralOperand(Value=ua.Variant(850, ua.VariantType.UInt16))],
                ),
            ]
        )
        details = ua.ReadEventDetails(
            StartTime=datetime.now(UTC) - timedelta(hours=1),
            EndTime=datetime.now(UTC) + timedelta(seconds=5),
            NumValuesPerNode=0,
            Filter=event_filter(where),
        )
        events, pages = await read_events(client, ua.NodeId(O.Server), details)
        assert pages > 1  # history.max_values_per_read: 2 in this stack
        assert events and {e["WinCCAlarmId"] for e in events} == {"1002"}  # severity 900 only
        states = [(e["ActiveState/Id"], e["AckedState/Id"]) for e in events]
        assert (True, False) in states and any(not active for active, _ in states)  # came and went
        times = [e["Time"] for e in events]
        assert times == sorted(times)
        # a folder answers the alarms of its own tags only, a tag its own
        tag_ns = await ns(client)
        tank = ua.NodeId(tag_name(stack, ALARMS["1001"][0]), tag_ns)
        reactor = ua.NodeId(tag_name(stack, ALARMS["1002"][0]), tag_ns)
        in_reactor, _ = await read_events(client, await folder_of(client, reactor), details)
        in_tank, _ = await read_events(client, await folder_of(client, tank), details)
        on_tag, _ = await read_events(client, reactor, details)
        assert len(in_reactor) == len(on_tag) == len(events) and in_tank == []
        unfiltered = ua.ReadEventDetails(
            StartTime=details.StartTime, EndTime=details.EndTime, NumValuesPerNode=0, Filter=event_filter()
        )
        tank_all, _ = await read_events(client, await folder_of(client, tank), unfiltered)
        assert tank_all and {e["WinCCAlarmId"] for e in tank_all} <= {"1001"}


async def read_events(
    client: Client, node: ua.NodeId, details: ua.ReadEventDetails
) -> tuple[list[dict[str, Any]], int]:
    """Every event HistoryReadEvent returns for `node`, following continuation points; and the number of calls."""
    events: list[dict[str, Any]] = []
    cp, pages = None, 0
    while True:
        params = ua.HistoryReadParameters(
            HistoryReadDetails=details,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ReleaseContinuationPoints=False,
            NodesToRead=[ua.HistoryReadValueId(NodeId=node, ContinuationPoint=cp)],
        )
        result = (await client.uaclient.history_read(params))[0]
        assert result.StatusCode.is_good(), result.StatusCode
        pages += 1
        events += [
            dict(zip(FIELDS + ["ConditionId"], (v.Value for v in e.EventFields), strict=True))
            for e in result.HistoryData.Events
        ]
        cp = result.ContinuationPoint
        if not cp:
            return events, pages


async def test_wincc_down_keeps_conditions(stack) -> None:
    async with session(stack, "operator") as op:
        events = Events()
        sub = await op.create_subscription(PUBLISH_MS, events)
        on_server = await sub.subscribe_events(ua.ObjectIds.Server, evfilter=event_filter())
        sim_alarm(stack, **{"raise": "1001"})
        await wait_until(lambda: events.of(on_server, WinCCAlarmId="1001", **{"ActiveState/Id": True}), timeout=10)
        stack.sim_control("/_sim/faults", {"mode": "down"})
        try:
            bad = (
                await wait_until(
                    lambda: [
                        e
                        for e in events.of(on_server, WinCCAlarmId="1001")
                        if e["Quality"].value == S.BadCommunicationError
                    ],
                    timeout=20,
                )
            )[-1]
            assert bad["ActiveState/Id"] is True and bad["Retain"] is True
            sim_alarm(stack, clear="1001")  # goes while the bridge cannot see it
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")
        went = (
            await wait_until(lambda: events.of(on_server, WinCCAlarmId="1001", **{"ActiveState/Id": False}), timeout=20)
        )[-1]
        assert went["Quality"].is_good() and went["Retain"] is True  # went, still unacknowledged
        errors = next(
            line
            for line in httpx.get(stack.health_url + "/metrics", timeout=5).text.splitlines()
            if line.startswith("wincc_bridge_alarm_poll_errors_total ")
        )
        assert float(errors.split()[1]) >= 1
        await sub.delete()
