"""What the simulated WinCC Unified speaks: its GraphQL schema (the part of Unified's schema the bridge uses, names
and shapes as Unified has them) and the encoding of the plant's tags, qualities and alarms in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bridge.wincc.models import DataType

__all__ = [
    "LOGGING_TAG",
    "PREFIX",
    "SDL",
    "SYSTEM",
    "TYPE_NAMES",
    "alarm_json",
    "bearer",
    "dp_name",
    "error",
    "filter_regex",
    "quality",
    "timestamp",
    "unified_name",
]

SYSTEM = "HMI_RT_1"
PREFIX = SYSTEM + "::"
LOGGING_TAG = "LoggingTag_1"

SDL = """
scalar Variant
scalar Timestamp
enum ObjectTypesEnum { TAG SIMPLETAG STRUCTURETAG TAGTYPE STRUCTURETAGTYPE SIMPLETAGTYPE ALARM ALARMCLASS LOGGINGTAG }
enum LoggedTagValuesSortingModeEnum { TIME_ASC TIME_DESC LEGACY }
enum NotificationReasonEnum { ADDED MODIFIED REMOVED REMOVED_BY_CHANGE }
type ErrorInfo { code: Variant description: String }
type User { name: String }
type Session { user: User token: String expires: Timestamp error: ErrorInfo }
type BrowseTagsResult { name: String! displayName: String objectType: ObjectTypesEnum dataType: String }
type Quality { quality: String subStatus: String limit: String }
type Value { value: Variant timestamp: Timestamp quality: Quality }
type TagValueResult { name: String! value: Value error: ErrorInfo }
type TagValueNotification {
  name: String! value: Value error: ErrorInfo notificationReason: NotificationReasonEnum
}
type WriteTagValuesResult { name: String! error: ErrorInfo }
type LoggedValue { value: Value }
type LoggedTagValuesResult { loggingTagName: String error: ErrorInfo values: [LoggedValue] }
type Alarm {
  name: String instanceID: Int raiseTime: Timestamp acknowledgmentTime: Timestamp clearTime: Timestamp
  state: Variant stateText: [String] priority: Int alarmClassName: String eventText: [String] origin: String
  area: String value: Variant
}
type ActiveAlarmNotification {
  name: String instanceID: Int raiseTime: Timestamp acknowledgmentTime: Timestamp clearTime: Timestamp
  state: Variant stateText: [String] priority: Int alarmClassName: String eventText: [String] origin: String
  area: String value: Variant notificationReason: String
}
type AcknowledgeAlarmsResult { alarmName: String alarmInstanceID: Int error: ErrorInfo }
input TagValueInput { name: String! value: Variant }
input AlarmIdentifierInput { name: String! instanceID: Int }
input QualityInput { quality: String subStatus: String }
type Query {
  browse(nameFilters: [String], objectTypeFilters: [ObjectTypesEnum], baseTypeFilters: [String],
         language: String): [BrowseTagsResult]
  tagValues(names: [String!]!, directRead: Boolean = false): [TagValueResult]
  loggedTagValues(names: [String!]!, startTime: Timestamp, endTime: Timestamp, maxNumberOfValues: Int,
                  sortingMode: LoggedTagValuesSortingModeEnum): [LoggedTagValuesResult]
  activeAlarms(systemNames: [String], filterString: String, languages: [String]): [Alarm]
  loggedAlarms(systemNames: [String], filterString: String, startTime: Timestamp, endTime: Timestamp,
               maxNumberOfResults: Int): [Alarm]
}
type Mutation {
  login(username: String!, password: String!): Session
  extendSession: Session
  writeTagValues(input: [TagValueInput]!, timestamp: Timestamp, quality: QualityInput): [WriteTagValuesResult]
  acknowledgeAlarms(input: [AlarmIdentifierInput]!): [AcknowledgeAlarmsResult]
}
type Subscription {
  tagValues(names: [String!]!): TagValueNotification
  activeAlarms(systemNames: [String], filterString: String, languages: [String]): ActiveAlarmNotification
}
"""

TYPE_NAMES = {
    DataType.bool: "Bool",
    DataType.int8: "SInt",
    DataType.int16: "Int",
    DataType.int32: "DInt",
    DataType.int64: "LInt",
    DataType.uint8: "USInt",
    DataType.uint16: "UInt",
    DataType.uint32: "UDInt",
    DataType.uint64: "ULInt",
    DataType.float: "Real",
    DataType.double: "LReal",
    DataType.string: "WString",
    DataType.datetime: "DateTime",
}
_BAD_SUB = {
    0x04: "CONFIGURATION_ERROR",
    0x08: "NOT_CONNECTED",
    0x0C: "DEVICE_FAILURE",
    0x10: "SENSOR_FAILURE",
    0x14: "NO_COMMUNICATION_WITH_LAST_USABLE_VALUE",
    0x18: "NO_COMMUNICATION_NO_USABLE_VALUE",
    0x1C: "OUT_OF_SERVICE",
}
_UNCERTAIN_SUB = {
    0x04: "LAST_USABLE_VALUE",
    0x08: "SUBSTITUTE_VALUE",
    0x0C: "INITIAL_VALUE",
    0x10: "SENSOR_CONVERSION",
    0x14: "RANGE_VIOLATION",
    0x18: "SUB_NORMAL",
}
_LIMITS = {0: "OK", 1: "LOW_LIMIT_VIOLATION", 2: "HIGH_LIMIT_VIOLATION", 3: "CONSTANT"}


def unified_name(dp_name: str) -> str:
    return PREFIX + dp_name


def dp_name(name: str) -> str | None:
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


def quality(q: int) -> dict[str, Any]:
    main = q & 0xC0
    sub = q & 0x3C
    if main >= 0x80:
        return {"quality": "GOOD_CASCADE", "subStatus": None, "limit": _LIMITS[q & 3]}
    if main == 0x40:
        return {"quality": "UNCERTAIN", "subStatus": _UNCERTAIN_SUB.get(sub), "limit": _LIMITS[q & 3]}
    return {"quality": "BAD", "subStatus": _BAD_SUB.get(sub), "limit": _LIMITS[q & 3]}


def filter_regex(patterns: list[str] | None) -> re.Pattern[str] | None:
    """Unified's browse wildcards: `**` across the dotted levels, `*` within one level, `?` one character. Neither
    crosses the `:` of a subelement (`<tag>:<logging tag>`): only a filter with its own `:` part reaches those."""
    if not patterns:
        return None
    parts = []
    for p in patterns:
        out = []
        i = 0
        while i < len(p):
            if p.startswith("**", i):
                out.append("[^:]*")
                i += 2
            elif p[i] == "*":
                out.append(r"[^.:]*")
                i += 1
            elif p[i] == "?":
                out.append(".")
                i += 1
            else:
                out.append(re.escape(p[i]))
                i += 1
        parts.append("".join(out))
    return re.compile("^(?:" + "|".join(parts) + ")$")


def error(code: int, description: str) -> dict[str, Any]:
    return {"code": code, "description": description}


def alarm_json(entry: dict[str, Any]) -> dict[str, Any]:
    came, acked = entry["state"] == "came", entry["acknowledged"]
    state = (5 if acked else 1) if came else (6 if acked else 2)
    ts = entry["timestamp"]
    return {
        "name": f"{unified_name(entry['dp'])}:Alarm_{entry['id']}",
        "instanceID": 1,
        "raiseTime": ts if came else None,
        "clearTime": None if came else ts,
        "acknowledgmentTime": ts if acked else None,
        "state": state,
        "stateText": [["Raised", "Cleared"][not came]],  # [String]: one text per language asked
        "priority": entry["priority"],
        "alarmClassName": entry["class"],
        "eventText": [entry["text"]],
        "origin": unified_name(entry["dp"]),
        "area": SYSTEM,
        "value": entry["value"],
    }


def timestamp(text: Any, default: datetime) -> datetime:
    if not isinstance(text, str) or not text:
        return default
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[7:]
    return None
