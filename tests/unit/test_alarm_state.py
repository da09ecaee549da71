"""The condition state machine (bridge/opcua/alarms/state.py): every transition of a WinCC alarm cycle, from
snapshots of WinCC's active list, and what Acknowledge, AddComment and an unreachable WinCC do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.opcua.alarms.state import AlarmBook, Reason, severity
from bridge.wincc.models import Alarm, AlarmState

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def alarm(
    state: str = "came",
    acked: bool = False,
    t: int = 0,
    alarm_id: str = "1042",
    priority: int = 500,
    tag: str | None = "System1.Tank1.Level",
) -> Alarm:
    return Alarm(
        id=alarm_id,
        text="Tank 1 level high",
        state=AlarmState(state),
        acknowledged=acked,
        timestamp=T0 + timedelta(seconds=t),
        tag=tag,
        alarm_class="Alarm",
        priority=priority,
    )


def test_came_went_acked_then_forgotten() -> None:
    book = AlarmBook()
    (c,) = book.reconcile([alarm()])
    assert (c.reason, c.condition.active, c.condition.acked, c.condition.retain, c.forget) == (
        Reason.came,
        True,
        False,
        True,
        False,
    )
    first_id = c.condition.event_id
    assert book.reconcile([alarm()]) == []  # nothing changed, nothing sent
    (w,) = book.reconcile([alarm("went", t=5)])
    assert (w.reason, w.condition.active, w.condition.retain) == (Reason.went, False, True)  # unacked: retained
    assert w.condition.time == T0 + timedelta(seconds=5) and w.condition.event_id != first_id
    (a,) = book.reconcile([alarm("went", acked=True, t=5)])
    assert (a.reason, a.condition.retain, a.forget) == (Reason.acked, False, True)
    assert len(book) == 0


def test_acked_while_active_then_went_is_last_event() -> None:
    book = AlarmBook()
    book.reconcile([alarm()])
    (a,) = book.reconcile([alarm(acked=True)])
    assert (a.reason, a.condition.retain, a.forget) == (Reason.acked, True, False)
    (g,) = book.reconcile([])  # WinCC lists active-or-unacked alarms: gone = went and acknowledged
    assert (g.reason, g.condition.active, g.condition.acked, g.condition.retain, g.forget) == (
        Reason.gone,
        False,
        True,
        False,
        True,
    )
    assert book.get("1042") is None


def test_new_occurrence_is_a_fresh_cycle() -> None:
    book = AlarmBook()
    (c,) = book.reconcile([alarm()])
    cond = c.condition
    book.commented(cond, "first", "operator")
    old_ids = set(cond.cycle_event_ids)
    book.reconcile([alarm("went", t=3)])
    (again,) = book.reconcile([alarm("came", t=9)])  # came again before anyone acknowledged
    assert again.reason is Reason.came_again and again.condition.active and not again.condition.acked
    assert again.condition.comment == "" and again.condition.user == ""
    assert not (old_ids & again.condition.cycle_event_ids)  # EventIds of the last cycle are stale now
    # acknowledged in WinCC, then unacknowledged while still active: a new occurrence in between
    book.reconcile([alarm(acked=True, t=9)])
    (third,) = book.reconcile([alarm(acked=False, t=20)])
    assert third.reason is Reason.came_again and third.condition.time == T0 + timedelta(seconds=20)


def test_went_and_came_between_two_snapshots_is_a_new_cycle() -> None:
    book = AlarmBook()
    (first,) = book.reconcile([alarm(t=1)])
    old_ids = set(first.condition.cycle_event_ids)
    assert book.reconcile([alarm(t=1)]) == []  # the same occurrence again: nothing
    (again,) = book.reconcile([alarm(t=5)])  # still active and unacknowledged, but it came at a later time
    assert again.reason is Reason.came_again and again.condition.time == T0 + timedelta(seconds=5)
    assert not (old_ids & again.condition.cycle_event_ids)
    assert book.reconcile([alarm(t=5)]) == []
    assert book.reconcile([alarm(t=3)]) == []  # an older time is no new occurrence


def test_restservice_state_4_alone_is_nothing_and_duplicates_count_once() -> None:
    book = AlarmBook()
    assert book.reconcile([alarm("went", acked=True)]) == []
    changes = book.reconcile([alarm(), alarm("went", t=1)])
    assert [c.reason for c in changes] == [Reason.came]


def test_acknowledge_and_comment_from_ua() -> None:
    book = AlarmBook()
    (c,) = book.reconcile([alarm()])
    cond = c.condition
    note = book.commented(cond, "looking", "operator")
    assert note.reason is Reason.comment and cond.comment == "looking" and cond.user == "operator"
    assert cond.comment_time is not None
    ack = book.acknowledged(cond, "done", "chief")
    assert (ack.reason, cond.acked, cond.comment, cond.user, ack.forget) == (Reason.acked, True, "done", "chief", False)
    assert book.reconcile([alarm(acked=True)]) == []  # WinCC agrees: no second event
    book.reconcile([alarm("went", acked=True, t=4)])
    assert book.get("1042") is None


def test_unreachable_marks_quality_once_and_recovery_reconciles() -> None:
    book = AlarmBook()
    book.reconcile([alarm(), alarm(alarm_id="7", tag=None)])
    bad = book.unreachable()
    assert len(bad) == 2 and all(c.reason is Reason.quality and not c.condition.good for c in bad)
    assert book.unreachable() == []  # still down: nothing new to say
    assert all(c.active for c in book.conditions.values())  # state kept
    changes = {c.condition.alarm_id: c for c in book.reconcile([alarm()])}
    assert changes["1042"].reason is Reason.quality and changes["1042"].condition.good
    assert changes["7"].reason is Reason.gone and changes["7"].condition.good and changes["7"].forget


def test_severity_mapping_and_last_severity() -> None:
    assert [severity(p) for p in (-5, 0, 1, 500, 1000, 5000)] == [1, 1, 1, 500, 1000, 1000]
    book = AlarmBook()
    book.reconcile([alarm(priority=300)])
    book.reconcile([alarm("went", priority=300, t=1)])
    (again,) = book.reconcile([alarm(priority=700, t=2)])
    assert again.condition.severity == 700 and again.condition.last_severity == 300


@pytest.mark.parametrize("acked", [False, True])
def test_every_event_has_a_new_event_id(acked: bool) -> None:
    book = AlarmBook()
    ids = [c.condition.event_id for c in book.reconcile([alarm()])]
    ids += [c.condition.event_id for c in book.reconcile([alarm(acked=acked)])]
    ids += [c.condition.event_id for c in book.reconcile([alarm("went", acked=acked, t=1)])]
    assert len(ids) == (3 if acked else 2) and len(set(ids)) == len(ids)


def test_several_stations_answer_for_their_own_alarms() -> None:
    """With several WinCC sources each station's list covers its own (prefixed) alarm ids only: one station
    answering without an alarm of the other must not end that alarm, and one station down marks only its own."""
    book = AlarmBook()
    book.reconcile([alarm(alarm_id="a/1")], prefix="a/")
    book.reconcile([alarm(alarm_id="b/1")], prefix="b/")
    assert book.reconcile([alarm(alarm_id="a/1")], prefix="a/") == []  # b/1 is not a's to end
    bad = book.unreachable(prefix="b/")
    assert [c.condition.alarm_id for c in bad] == ["b/1"] and book.get("a/1").good
    (gone,) = book.reconcile([], prefix="a/")
    assert gone.condition.alarm_id == "a/1" and gone.reason is Reason.gone and book.get("b/1") is not None


def test_pushed_changes_touch_only_the_alarms_named() -> None:
    book = AlarmBook()
    book.reconcile([alarm(alarm_id="A"), alarm(alarm_id="B")])
    # a push names B only: A keeps its state (a poll's answer without A would retire it)
    (b,) = book.update([alarm("came", acked=True, alarm_id="B", t=2)], [])
    assert (b.reason, b.condition.alarm_id, b.condition.acked) == (Reason.acked, "B", True)
    assert book.get("A") is not None and book.get("A").active
    assert book.update([alarm(alarm_id="A")], []) == []  # repeated state: nothing sent
    (new,) = book.update([alarm(alarm_id="C", t=3)], [])
    assert (new.reason, new.condition.alarm_id) == (Reason.came, "C")
    # REMOVED: went and acknowledged in WinCC, the last event of the cycle; an unknown id is ignored
    (gone,) = book.update([], ["B", "unknown"])
    assert (gone.reason, gone.forget, gone.condition.retain) == (Reason.gone, True, False)
    assert sorted(book.conditions) == ["A", "C"]
