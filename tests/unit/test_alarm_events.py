"""The EventFilter evaluator (bridge/opcua/alarms/events.py) that answers monitored items and HistoryReadEvent:
select clauses per field (ConditionId included) and where clauses with every operator the bridge offers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua

from bridge.opcua.alarms.events import EventRecord, matches, select
from bridge.opcua.alarms.records import Source, condition_record, refresh_record
from bridge.opcua.alarms.state import AlarmBook
from bridge.wincc.models import Alarm, AlarmState

O = ua.ObjectIds
F = ua.FilterOperator
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
COND = ua.NodeId("1042", 5)


def record(priority: int = 800, active: bool = True) -> EventRecord:
    book = AlarmBook()
    (change,) = book.reconcile(
        [
            Alarm(
                "1042",
                "Tank 1 level high",
                AlarmState.came if active else AlarmState.went,
                False,
                T0,
                "System1.Tank1.Level",
                "Alarm",
                priority,
            )
        ]
    )
    source = Source(ua.NodeId("System1.Tank1.Level", 2), "System1.Tank1.Level", (ua.NodeId(O.Server),), True)
    return condition_record(change.condition, COND, source, now=T0 + timedelta(seconds=1))


def field(path: str, type_id: int = O.BaseEventType) -> ua.SimpleAttributeOperand:
    return ua.SimpleAttributeOperand(
        TypeDefinitionId=ua.NodeId(type_id),
        BrowsePath=[ua.QualifiedName(p, 0) for p in path.split("/")],
        AttributeId=ua.AttributeIds.Value,
    )


def lit(value: object, vt: ua.VariantType | None = None) -> ua.LiteralOperand:
    return ua.LiteralOperand(Value=ua.Variant(value, vt) if vt else ua.Variant(value))


def el(op: ua.FilterOperator, *operands: object) -> ua.ContentFilterElement:
    return ua.ContentFilterElement(FilterOperator=op, FilterOperands=list(operands))


def where(*elements: ua.ContentFilterElement) -> ua.ContentFilter:
    return ua.ContentFilter(Elements=list(elements))


def test_select_fields_condition_id_and_unknowns() -> None:
    r = record()
    condition_id = ua.SimpleAttributeOperand(
        TypeDefinitionId=ua.NodeId(O.ConditionType), AttributeId=ua.AttributeIds.NodeId
    )
    out = select(
        r,
        [
            field("Severity"),
            field("AckedState/Id"),
            field("Message"),
            condition_id,
            field("NoSuchField"),
            ua.SimpleAttributeOperand(TypeDefinitionId=ua.NodeId(O.BaseEventType), AttributeId=ua.AttributeIds.NodeId),
        ],
    )
    assert out[0] == ua.Variant(800, ua.VariantType.UInt16)
    assert out[1].Value is False and out[2].Value.Text == "Tank 1 level high"
    assert out[3] == ua.Variant(COND, ua.VariantType.NodeId)
    assert out[4].Value is None and out[5].Value is None  # unknown field; NodeId of a non-condition type


def test_empty_where_matches() -> None:
    assert matches(record(), None) and matches(record(), ua.ContentFilter())


@pytest.mark.parametrize(
    ("op", "literal", "expected"),
    [
        (F.Equals, 800, True),
        (F.Equals, 801, False),
        (F.GreaterThan, 799, True),
        (F.GreaterThan, 800, False),
        (F.GreaterThanOrEqual, 800, True),
        (F.GreaterThanOrEqual, 801, False),
        (F.LessThan, 801, True),
        (F.LessThan, 800, False),
        (F.LessThanOrEqual, 800, True),
        (F.LessThanOrEqual, 799, False),
    ],
)
def test_comparisons(op: ua.FilterOperator, literal: int, expected: bool) -> None:
    assert matches(record(), where(el(op, field("Severity"), lit(literal, ua.VariantType.UInt16)))) is expected


def test_of_type_matches_supertypes_only() -> None:
    r = record()
    for type_id, expected in (
        (O.AlarmConditionType, True),
        (O.ConditionType, True),
        (O.BaseEventType, True),
        (O.AuditEventType, False),
        (O.OffNormalAlarmType, False),
    ):
        assert matches(r, where(el(F.OfType, lit(ua.NodeId(type_id))))) is expected
    marker = refresh_record(O.RefreshStartEventType)
    assert matches(marker, where(el(F.OfType, lit(ua.NodeId(O.SystemEventType)))))
    assert not matches(marker, where(el(F.OfType, lit(ua.NodeId(O.ConditionType)))))


def test_and_or_not_nested() -> None:
    r = record()
    high = el(F.GreaterThanOrEqual, field("Severity"), lit(700))
    unacked = el(F.Equals, field("AckedState/Id"), lit(False))
    other = el(F.Equals, field("WinCCAlarmId"), lit("9"))
    both = where(el(F.And, ua.ElementOperand(Index=1), ua.ElementOperand(Index=2)), high, unacked)
    either = where(el(F.Or, ua.ElementOperand(Index=1), ua.ElementOperand(Index=2)), other, high)
    neither = where(el(F.And, ua.ElementOperand(Index=1), ua.ElementOperand(Index=2)), other, high)
    negated = where(el(F.Not, ua.ElementOperand(Index=1)), other)
    assert matches(r, both) and matches(r, either) and not matches(r, neither) and matches(r, negated)


def test_texts_lists_like_between_isnull() -> None:
    r = record()
    assert matches(r, where(el(F.Equals, field("Message"), lit("Tank 1 level high"))))
    assert matches(r, where(el(F.Like, field("Message"), lit("Tank _ level%"))))
    assert not matches(r, where(el(F.Like, field("Message"), lit("Reactor%"))))
    assert matches(r, where(el(F.InList, field("WinCCAlarmId"), lit("1"), lit("1042"))))
    assert matches(r, where(el(F.Between, field("Severity"), lit(700), lit(900))))
    assert matches(r, where(el(F.IsNull, field("NoSuchField"))))
    assert matches(r, where(el(F.GreaterThan, field("Time"), lit(T0 - timedelta(seconds=1)))))
    assert matches(r, where(el(F.Equals, field("ConditionClassId"), lit(ua.NodeId(O.ProcessConditionClassType)))))


def test_bad_filters_are_false_not_errors() -> None:
    r = record()
    assert not matches(r, where(el(F.Equals, field("NoSuchField"), lit(1))))  # null compares false
    assert not matches(r, where(el(F.GreaterThan, field("Message"), lit(5))))  # text > number
    assert not matches(r, where(el(F.And, ua.ElementOperand(Index=0), ua.ElementOperand(Index=0))))  # a loop
    assert not matches(r, where(el(F.Equals, ua.ElementOperand(Index=7), lit(1))))  # no such element
    assert not matches(r, where(el(F.Cast, field("Severity"), lit(ua.NodeId(O.String)))))  # not offered
    assert not matches(r, where(el(F.Equals, ua.AttributeOperand(), lit(1))))
