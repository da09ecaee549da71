"""The fields of each event the alarms feature emits (Part 5 BaseEventType, Part 9 condition and audit types).

WinCC -> OPC UA (the README's Alarms section has the same table):
- alarm id -> ConditionId `ns=.../alarms;s=<id>`, the `WinCCAlarmId` property, ConditionName `<class> <id>`
- text -> Message; class -> ConditionClassName (ConditionClassId: SystemConditionClassType for classes named
  "System...", MaintenanceConditionClassType for "Maintenance...", else ProcessConditionClassType)
- priority -> Severity (state.severity); WinCC timestamp -> Time; bridge clock -> ReceiveTime
- dp tag / restservice variableName -> SourceNode, SourceName, InputNode (the WinCC root when there is none)
- came/went -> ActiveState; acknowledged -> AckedState; Retain = active or unacknowledged
"""

from __future__ import annotations

from datetime import UTC, datetime

from asyncua import ua

from bridge.opcua.alarms.events import EventRecord
from bridge.opcua.alarms.state import Condition, new_event_id, severity

__all__ = ["Source", "class_id", "condition_name", "condition_record", "history_record", "refresh_record"]

O = ua.ObjectIds
_VT = ua.VariantType
_GOOD = ua.StatusCode(ua.StatusCodes.Good)
_COMM = ua.StatusCode(ua.StatusCodes.BadCommunicationError)
_NULL_NODE = ua.Variant(ua.NodeId(), _VT.NodeId)
_NULL = ua.Variant()
_ENABLED = ua.Variant(ua.LocalizedText("Enabled"), _VT.LocalizedText)
_TRUE = ua.Variant(True, _VT.Boolean)
_FALSE = ua.Variant(False, _VT.Boolean)
_ACTIVE = {
    True: ua.Variant(ua.LocalizedText("Active"), _VT.LocalizedText),
    False: ua.Variant(ua.LocalizedText("Inactive"), _VT.LocalizedText),
}
_ACKED = {
    True: ua.Variant(ua.LocalizedText("Acknowledged"), _VT.LocalizedText),
    False: ua.Variant(ua.LocalizedText("Unacknowledged"), _VT.LocalizedText),
}
_EVENT_TYPE = ua.Variant(ua.NodeId(O.AlarmConditionType), _VT.NodeId)


class Source:
    """Where a condition hangs: the source node (tag or WinCC root), its name, and the notifiers above it."""

    __slots__ = ("chain", "is_tag", "name", "node_id")

    def __init__(self, node_id: ua.NodeId, name: str, chain: tuple[ua.NodeId, ...], is_tag: bool) -> None:
        self.node_id = node_id
        self.name = name
        self.chain = chain  # Server, WinCC root, folders from the top down to the source's folder
        self.is_tag = is_tag


def class_id(alarm_class: str) -> ua.NodeId:
    low = alarm_class.lower()
    if low.startswith("system"):
        return ua.NodeId(O.SystemConditionClassType)
    if low.startswith("maintenance"):
        return ua.NodeId(O.MaintenanceConditionClassType)
    return ua.NodeId(O.ProcessConditionClassType)


def condition_name(alarm_class: str, alarm_id: str) -> str:
    return f"{alarm_class} {alarm_id}"


def _time(t: datetime | None) -> ua.Variant:
    return ua.Variant(t, _VT.DateTime) if t is not None else _NULL


def condition_record(
    cond: Condition, condition_id: ua.NodeId, source: Source, now: datetime | None = None
) -> EventRecord:
    """The condition's current state as an event (EventId: the one the state machine stamped last)."""
    now = now or datetime.now(UTC)
    source_node = ua.Variant(source.node_id, _VT.NodeId)
    fields = {
        "EventId": ua.Variant(cond.event_id, _VT.ByteString),
        "EventType": _EVENT_TYPE,
        "SourceNode": source_node,
        "SourceName": ua.Variant(source.name, _VT.String),
        "Time": _time(cond.time),
        "ReceiveTime": _time(now),
        "Message": ua.Variant(ua.LocalizedText(cond.text), _VT.LocalizedText),
        "Severity": ua.Variant(cond.severity, _VT.UInt16),
        "ConditionClassId": ua.Variant(class_id(cond.alarm_class), _VT.NodeId),
        "ConditionClassName": ua.Variant(ua.LocalizedText(cond.alarm_class), _VT.LocalizedText),
        "ConditionName": ua.Variant(condition_name(cond.alarm_class, cond.alarm_id), _VT.String),
        "BranchId": _NULL_NODE,
        "Retain": _TRUE if cond.retain else _FALSE,
        "EnabledState": _ENABLED,
        "EnabledState/Id": _TRUE,
        "Quality": ua.Variant(_GOOD if cond.good else _COMM, _VT.StatusCode),
        "Quality/SourceTimestamp": _time(cond.quality_time),
        "LastSeverity": ua.Variant(cond.last_severity or cond.severity, _VT.UInt16),
        "LastSeverity/SourceTimestamp": _time(cond.severity_time),
        "Comment": ua.Variant(ua.LocalizedText(cond.comment), _VT.LocalizedText),
        "Comment/SourceTimestamp": _time(cond.comment_time),
        "ClientUserId": ua.Variant(cond.user, _VT.String),
        "AckedState": _ACKED[cond.acked],
        "AckedState/Id": _TRUE if cond.acked else _FALSE,
        "ActiveState": _ACTIVE[cond.active],
        "ActiveState/Id": _TRUE if cond.active else _FALSE,
        "InputNode": source_node if source.is_tag else _NULL_NODE,
        "SuppressedOrShelved": _FALSE,
        "WinCCAlarmId": ua.Variant(cond.alarm_id, _VT.String),
    }
    return EventRecord(O.AlarmConditionType, fields, condition_id)


def history_record(
    alarm_id: str,
    text: str,
    alarm_class: str,
    priority: int,
    active: bool,
    acked: bool,
    time: datetime,
    condition_id: ua.NodeId,
    source: Source,
) -> EventRecord:
    """One entry of WinCC's alarm log as the event it was (a fresh EventId: WinCC's log has none)."""
    cond = Condition(alarm_id, None, text, alarm_class, severity(priority), active, acked, time)
    cond.event_id = new_event_id()
    cond.quality_time = cond.severity_time = time
    return condition_record(cond, condition_id, source, now=time)


def refresh_record(event_type: int, now: datetime | None = None) -> EventRecord:
    """RefreshStartEvent / RefreshEndEvent, from the Server object (Part 9, 5.11)."""
    now = now or datetime.now(UTC)
    name = "RefreshStartEvent" if event_type == O.RefreshStartEventType else "RefreshEndEvent"
    return EventRecord(
        event_type,
        {
            "EventId": ua.Variant(new_event_id(), _VT.ByteString),
            "EventType": ua.Variant(ua.NodeId(event_type), _VT.NodeId),
            "SourceNode": ua.Variant(ua.NodeId(O.Server), _VT.NodeId),
            "SourceName": ua.Variant("Server", _VT.String),
            "Time": _time(now),
            "ReceiveTime": _time(now),
            "Message": ua.Variant(ua.LocalizedText(name), _VT.LocalizedText),
            "Severity": ua.Variant(1, _VT.UInt16),
        },
    )
