"""What travels to and from WinCC Unified: the GraphQL documents the bridge sends and the decoding of the shapes
that come back (quality, error codes, alarm states, names). Shared by the request client and the WebSocket push.
See docs/wincc-rest-api.md, section Unified."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bridge.wincc.models import Alarm, AlarmState, TagError, TagErrorKind, TagValue, decode_quality
from bridge.wincc.parse import parse_ts

__all__ = [
    "ACKNOWLEDGE_ALARMS",
    "ACTIVE_ALARMS",
    "BROWSE",
    "EXTEND_SESSION",
    "LOGGED_ALARMS",
    "LOGGED_TAG_VALUES",
    "LOGIN",
    "SUBSCRIBE_ACTIVE_ALARMS",
    "SUBSCRIBE_TAG_VALUES",
    "TAG_VALUES",
    "WRITE_TAG_VALUES",
    "alarm_from_unified",
    "error_code",
    "parse_tag_item",
    "quality_byte",
    "split_logging_tag",
]

_SESSION = "{ user { name } token expires error { code description } }"
_VALUE = "value { value timestamp quality { quality subStatus limit } } error { code description }"
_ALARM = (
    "name instanceID raiseTime acknowledgmentTime clearTime state stateText priority alarmClassName "
    "eventText origin area value"
)

LOGIN = (
    "mutation ($username: String!, $password: String!) "
    f"{{ login(username: $username, password: $password) {_SESSION} }}"
)
EXTEND_SESSION = f"mutation {{ extendSession {_SESSION} }}"
BROWSE = (
    "query ($nameFilters: [String], $objectTypeFilters: [ObjectTypesEnum]) "
    "{ browse(nameFilters: $nameFilters, objectTypeFilters: $objectTypeFilters) "
    "{ name displayName objectType dataType } }"
)
TAG_VALUES = f"query ($names: [String!]!) {{ tagValues(names: $names) {{ name {_VALUE} }} }}"
SUBSCRIBE_TAG_VALUES = (
    f"subscription ($names: [String!]!) {{ tagValues(names: $names) {{ name {_VALUE} notificationReason }} }}"
)
WRITE_TAG_VALUES = (
    "mutation ($input: [TagValueInput]!) { writeTagValues(input: $input) { name error { code description } } }"
)
LOGGED_TAG_VALUES = (
    "query ($names: [String!]!, $startTime: Timestamp, $endTime: Timestamp, $maxNumberOfValues: Int, "
    "$sortingMode: LoggedTagValuesSortingModeEnum) { loggedTagValues(names: $names, startTime: $startTime, "
    "endTime: $endTime, maxNumberOfValues: $maxNumberOfValues, sortingMode: $sortingMode) "
    "{ loggingTagName error { code description } values { value { value timestamp quality { quality } } } } }"
)
ACTIVE_ALARMS = f"query {{ activeAlarms {{ {_ALARM} }} }}"
SUBSCRIBE_ACTIVE_ALARMS = f"subscription {{ activeAlarms {{ {_ALARM} notificationReason }} }}"
ACKNOWLEDGE_ALARMS = (
    "mutation ($input: [AlarmIdentifierInput]!) { acknowledgeAlarms(input: $input) "
    "{ alarmName alarmInstanceID error { code description } } }"
)
LOGGED_ALARMS = (
    f"query ($startTime: Timestamp, $endTime: Timestamp, $maxNumberOfResults: Int) "
    f"{{ loggedAlarms(startTime: $startTime, endTime: $endTime, maxNumberOfResults: $maxNumberOfResults) "
    f"{{ {_ALARM} }} }}"
)

_MAIN_QUALITY = {"GOOD": 0xC0, "GOOD_CASCADE": 0xC0, "GOOD_NON_CASCADE": 0xC0, "UNCERTAIN": 0x40, "BAD": 0x00}
# subStatus names stand for the quality byte's substatus bits (bits 2..5)
_SUB_STATUS = {
    "CONFIGURATION_ERROR": 0x04,
    "NOT_CONNECTED": 0x08,
    "DEVICE_FAILURE": 0x0C,
    "SENSOR_FAILURE": 0x10,
    "NO_COMMUNICATION_WITH_LAST_USABLE_VALUE": 0x14,
    "NO_COMMUNICATION_NO_USABLE_VALUE": 0x18,
    "OUT_OF_SERVICE": 0x1C,
    "LAST_USABLE_VALUE": 0x04,
    "SUBSTITUTE_VALUE": 0x08,
    "INITIAL_VALUE": 0x0C,
    "SENSOR_CONVERSION": 0x10,
    "RANGE_VIOLATION": 0x14,
    "SUB_NORMAL": 0x18,
}
_LIMIT = {"OK": 0, "LOW_LIMIT_VIOLATION": 1, "HIGH_LIMIT_VIOLATION": 2, "CONSTANT": 3, "LOW": 1, "HIGH": 2}

# Unified alarm states -> (came/went, acknowledged). 0 normal and 8 removed end a cycle like went + acknowledged.
_ALARM_STATES: dict[int, tuple[AlarmState, bool]] = {
    0: (AlarmState.went, True),
    1: (AlarmState.came, False),
    2: (AlarmState.went, False),
    5: (AlarmState.came, True),
    6: (AlarmState.went, True),
    7: (AlarmState.went, True),
    8: (AlarmState.went, True),
}
_ALARM_STATE_NAMES = {
    "NORMAL": 0,
    "RAISED": 1,
    "RAISED_CLEARED": 2,
    "RAISED_ACKNOWLEDGED": 5,
    "RAISED_ACKNOWLEDGED_CLEARED": 6,
    "RAISED_CLEARED_ACKNOWLEDGED": 7,
    "REMOVED": 8,
}
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_LOGGING_TAG = re.compile(r"^(.*[^:]):([^:]+)$")


def error_code(raw: Any) -> int | None:
    """An error `code` as a number (Unified sends numbers or numeric strings); None if absent; -1 if unreadable."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return -1
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1


def quality_byte(raw: Any) -> int:
    """Unified's quality object (or a byte, or good/uncertain/bad text) as the WinCC quality byte."""
    if raw is None:
        return 0xC0
    if not isinstance(raw, dict):
        if isinstance(raw, str) and raw.upper() in _MAIN_QUALITY:
            return _MAIN_QUALITY[raw.upper()]
        return decode_quality(raw)
    main = raw.get("quality")
    if main is None:
        base = 0xC0
    elif isinstance(main, str) and main.upper() in _MAIN_QUALITY:
        base = _MAIN_QUALITY[main.upper()]
    else:
        base = decode_quality(main) & 0xC0
    sub = raw.get("subStatus")
    if isinstance(sub, str) and base != 0xC0:
        base |= _SUB_STATUS.get(sub.upper(), 0)
    limit = raw.get("limit")
    if isinstance(limit, str):
        base |= _LIMIT.get(limit.upper(), 0)
    return base


def split_logging_tag(name: str) -> tuple[str | None, str | None]:
    """`System::A.B:LoggingTag_1` -> (`System::A.B`, `LoggingTag_1`); (None, None) if the name has no single `:`
    after the system separator. Alarms are named the same way (`<tag>:<alarm>`)."""
    match = _LOGGING_TAG.match(name)
    if match is None or match.group(1).endswith(":"):
        return None, None
    return match.group(1), match.group(2)


def _time(raw: Any) -> datetime | None:
    if not raw:
        return None
    t = parse_ts(raw)
    return None if t <= _NO_TIME else t


def _state(raw: Any) -> int:
    if isinstance(raw, str) and not raw.strip().lstrip("-").isdigit():
        try:
            return _ALARM_STATE_NAMES[raw.strip().upper()]
        except KeyError:
            raise ValueError(f"alarm state {raw!r} unknown") from None
    code = error_code(raw)
    if code not in _ALARM_STATES:
        raise ValueError(f"alarm state {raw!r} unknown")
    return code


def alarm_from_unified(raw: Any) -> Alarm | None:
    """One Unified alarm entry as the bridge's Alarm; its id is `<name>#<instanceID>` (Unified identifies an alarm
    by both). Raises ValueError/KeyError/TypeError for an entry that cannot be read."""
    if not isinstance(raw, dict):
        raise TypeError("alarm is not an object")
    name = raw["name"]
    if not isinstance(name, str) or not name:
        raise ValueError("alarm has no name")
    instance = error_code(raw.get("instanceID"))
    state, acknowledged = _ALARM_STATES[_state(raw.get("state"))]
    times = [
        t
        for t in (_time(raw.get("raiseTime")), _time(raw.get("clearTime")), _time(raw.get("acknowledgmentTime")))
        if t is not None
    ]
    text = _first_text(raw.get("eventText"))
    state_text = _first_text(raw.get("stateText"))  # both are [String] (one per language asked) in Unified's schema
    tag, _ = split_logging_tag(name)
    origin = raw.get("origin")
    priority = error_code(raw.get("priority"))
    return Alarm(
        id=f"{name}#{instance if instance not in (None, -1) else 0}",
        text=text or state_text or name,
        state=state,
        acknowledged=acknowledged,
        timestamp=max(times) if times else datetime.now(UTC),
        tag=tag or (origin if isinstance(origin, str) and origin else None),
        alarm_class=str(raw.get("alarmClassName") or "Alarm"),
        priority=priority if priority is not None and priority > 0 else 1,
        value=raw.get("value"),
        extra={k: raw[k] for k in ("area", "stateText", "origin") if raw.get(k) is not None},
    )


def _first_text(raw: Any) -> str:
    """A text field as Unified sends it: a string, or a list with one text per language (the first non-empty)."""
    if isinstance(raw, list):
        return next((t for t in raw if isinstance(t, str) and t), "")
    return raw if isinstance(raw, str) else ""


def parse_tag_item(name: str, raw: Any) -> TagValue | TagError:
    """One tagValues item (query answer or subscription notification) -> TagValue, or TagError for its error."""
    if not isinstance(raw, dict):
        return TagError(name, "item is not an object", TagErrorKind.bad_answer)
    error = raw.get("error")
    if isinstance(error, dict):
        code = error_code(error.get("code"))
        if code not in (0, None):
            kind = TagErrorKind.not_found if code == 2 else TagErrorKind.item_error
            return TagError(name, f"error {code}: {error.get('description') or ''}".rstrip(": "), kind)
    value = raw.get("value")
    if not isinstance(value, dict):
        return TagError(name, "item has no value", TagErrorKind.bad_answer)
    try:
        return TagValue(name, value.get("value"), quality_byte(value.get("quality")), parse_ts(value.get("timestamp")))
    except (ValueError, TypeError) as exc:
        return TagError(name, str(exc), TagErrorKind.bad_answer)
