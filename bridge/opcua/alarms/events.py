"""Events as the bridge sends them: a flat record of fields, and the EventFilter that picks from it.

One `EventRecord` is built per event (condition state change, refresh marker, audit entry, history entry) and
answers every monitored item and HistoryReadEvent through the same two functions:
- `select(record, clauses)`: the EventFieldList values, one per select clause, null where the event has no such
  field. A clause names a field by its BrowsePath (names joined with "/", e.g. `AckedState/Id`; the namespace of
  each name is not compared, as every standard field is unique by name); the ConditionId is the clause with an
  empty path, AttributeId NodeId and a condition type as TypeDefinitionId (Part 9, 5.5.2).
- `matches(record, where)`: Part 4 7.7 ContentFilter with Equals, IsNull, GreaterThan, LessThan,
  GreaterThanOrEqual, LessThanOrEqual, Like, Not, Between, InList, And, Or and OfType (the event's type or any
  subtype of the named type). A comparison with a null field is false; an operator the evaluator does not know
  makes the filter false (the event is not sent), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

__all__ = ["TYPE_CHAIN", "EventRecord", "matches", "select"]

O = ua.ObjectIds
F = ua.FilterOperator

# each event type the bridge emits, with its supertypes up to BaseEventType (OfType matches any of them)
TYPE_CHAIN: dict[int, frozenset[int]] = {
    O.AlarmConditionType: frozenset(
        {O.AlarmConditionType, O.AcknowledgeableConditionType, O.ConditionType, O.BaseEventType}
    ),
    O.RefreshStartEventType: frozenset({O.RefreshStartEventType, O.SystemEventType, O.BaseEventType}),
    O.RefreshEndEventType: frozenset({O.RefreshEndEventType, O.SystemEventType, O.BaseEventType}),
    O.AuditConditionAcknowledgeEventType: frozenset(
        {
            O.AuditConditionAcknowledgeEventType,
            O.AuditConditionEventType,
            O.AuditUpdateMethodEventType,
            O.AuditEventType,
            O.BaseEventType,
        }
    ),
    O.AuditConditionCommentEventType: frozenset(
        {
            O.AuditConditionCommentEventType,
            O.AuditConditionEventType,
            O.AuditUpdateMethodEventType,
            O.AuditEventType,
            O.BaseEventType,
        }
    ),
}
_CONDITION_TYPES = frozenset({O.ConditionType, O.AcknowledgeableConditionType, O.AlarmConditionType})
_NULL = ua.Variant()


@dataclass(slots=True)
class EventRecord:
    """One event: its type, its fields by browse path, and the condition it reports on (None if not a condition)."""

    event_type: int
    fields: dict[str, ua.Variant]
    condition_id: ua.NodeId | None = None

    def value(self, path: str) -> Any:
        v = self.fields.get(path)
        return v.Value if v is not None else None


def _path(op: ua.SimpleAttributeOperand) -> str:
    return "/".join(q.Name for q in op.BrowsePath or [])


def _field(record: EventRecord, op: ua.SimpleAttributeOperand) -> ua.Variant:
    if not op.BrowsePath:
        type_id = op.TypeDefinitionId
        is_condition = type_id.NamespaceIndex == 0 and type_id.Identifier in _CONDITION_TYPES
        if op.AttributeId == ua.AttributeIds.NodeId and is_condition and record.condition_id is not None:
            return ua.Variant(record.condition_id, ua.VariantType.NodeId)
        return _NULL
    if op.AttributeId not in (ua.AttributeIds.Value, 0):
        return _NULL
    return record.fields.get(_path(op), _NULL)


# a monitored item's select clauses, compiled once: (clauses object, [field path or None for a special clause])
_COMPILED: dict[int, tuple[object, list[str | None]]] = {}
_COMPILED_MAX = 4096


def _compiled(clauses: Sequence[ua.SimpleAttributeOperand]) -> list[str | None]:
    key = id(clauses)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is clauses:
        return hit[1]
    paths = [_path(op) if op.BrowsePath and op.AttributeId in (ua.AttributeIds.Value, 0) else None for op in clauses]
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[key] = (clauses, paths)
    return paths


def select(record: EventRecord, clauses: Sequence[ua.SimpleAttributeOperand]) -> list[ua.Variant]:
    """One value per clause. The clause list is compiled to field paths once (a ConditionRefresh of thousands of
    conditions, or a stream of events, asks the same clauses again and again)."""
    fields = record.fields
    return [
        fields.get(path, _NULL) if path is not None else _field(record, op)
        for path, op in zip(_compiled(clauses), clauses, strict=True)
    ]


# ---- where clause -------------------------------------------------------------------------------------------------
class _Unsupported(Exception):
    pass


def matches(record: EventRecord, where: ua.ContentFilter | None) -> bool:
    elements = where.Elements if where is not None else None
    if not elements:
        return True
    try:
        return _element(record, elements, 0, 0) is True
    except (_Unsupported, IndexError, TypeError, ValueError, RecursionError):
        return False


def _plain(value: Any) -> Any:
    """Values as compared: texts by their text, StatusCodes by their number, naive times as UTC."""
    if isinstance(value, ua.Variant):
        value = value.Value
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.QualifiedName):
        return value.Name
    if isinstance(value, ua.StatusCode):
        return value.value
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _operand(record: EventRecord, elements: Sequence[ua.ContentFilterElement], op: Any, depth: int) -> Any:
    if isinstance(op, ua.ExtensionObject):  # an operand type the decoder does not know
        raise _Unsupported
    if isinstance(op, ua.LiteralOperand):
        return _plain(op.Value)
    if isinstance(op, ua.SimpleAttributeOperand):
        return _plain(_field(record, op))
    if isinstance(op, ua.ElementOperand):
        if op.Index <= 0 or depth > 32:  # element 0 is the root: pointing back at it is a loop
            raise _Unsupported
        return _element(record, elements, op.Index, depth + 1)
    raise _Unsupported  # AttributeOperand: attributes of nodes, not of events


def _compare(a: Any, b: Any, how: str) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, bool) != isinstance(b, bool) and how != "eq":
        return False
    try:
        if how == "eq":
            return bool(a == b)
        if how == "gt":
            return bool(a > b)
        if how == "lt":
            return bool(a < b)
        if how == "ge":
            return bool(a >= b)
        return bool(a <= b)
    except TypeError:
        return False


def _like(text: Any, pattern: Any) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        return False
    # Part 4 Table 120: % any run, _ one character, [] a set, [^] not in set; \ escapes
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        if c == "%":
            out += ".*"
        elif c == "_":
            out += "."
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + re.escape(body[1:]) if body.startswith("^") else re.escape(body)) + "]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.fullmatch(out, text, re.DOTALL) is not None


def _element(record: EventRecord, elements: Sequence[ua.ContentFilterElement], index: int, depth: int) -> Any:
    el = elements[index]
    ops = list(el.FilterOperands or [])

    def val(i: int) -> Any:
        return _operand(record, elements, ops[i], depth)

    op = el.FilterOperator
    if op == F.Equals:
        return _compare(val(0), val(1), "eq")
    if op == F.GreaterThan:
        return _compare(val(0), val(1), "gt")
    if op == F.LessThan:
        return _compare(val(0), val(1), "lt")
    if op == F.GreaterThanOrEqual:
        return _compare(val(0), val(1), "ge")
    if op == F.LessThanOrEqual:
        return _compare(val(0), val(1), "le")
    if op == F.IsNull:
        return val(0) is None
    if op == F.Not:
        return val(0) is False
    if op == F.And:
        return val(0) is True and val(1) is True
    if op == F.Or:
        return val(0) is True or val(1) is True
    if op == F.Between:
        return _compare(val(0), val(1), "ge") and _compare(val(0), val(2), "le")
    if op == F.InList:
        first = val(0)
        return any(_compare(first, val(i), "eq") for i in range(1, len(ops)))
    if op == F.Like:
        return _like(val(0), val(1))
    if op == F.OfType:
        wanted = val(0)
        if not isinstance(wanted, ua.NodeId) or wanted.NamespaceIndex != 0:
            return False
        return wanted.Identifier in TYPE_CHAIN.get(record.event_type, frozenset({record.event_type}))
    raise _Unsupported
