"""The condition state machine: one `Condition` per WinCC alarm id, fed by snapshots of WinCC's active-alarm list.

No OPC UA and no I/O here, so every rule is unit-tested on its own (tests/unit/test_alarm_state.py).

WinCC's active list (dp `/api/alerts/active`, restservice `MessageList`) holds every alarm that is active or not
yet acknowledged. Comparing one snapshot with the conditions we hold gives every transition:
- an id we do not hold, active: a new cycle (came; unacknowledged unless WinCC already says acknowledged);
- active -> inactive: went (Retain stays true while unacknowledged);
- unacknowledged -> acknowledged: acked (by us or by an operator in WinCC);
- inactive -> active, or acknowledged -> unacknowledged while active: a new occurrence of the same alarm id, so a
  fresh cycle (comment and user of the last cycle are dropped, EventIds of the last cycle become unknown);
- active and unacknowledged in both, with a later came time: it went and came again between two snapshots (a poll
  period is long enough for that); the list shows only the new occurrence, so its time is the one sign of it, and
  it is a fresh cycle too (without this a client would never see the alarm come again);
- an id we hold that WinCC no longer lists: it went and was acknowledged in WinCC.
Pushed changes (unified's activeAlarms subscription) go through the same rules one alarm at a time (`update`);
an alarm the push says left the list is the last case.
Whenever a condition ends up inactive and acknowledged, its event carries Retain false and the condition is
forgotten. Every transition is exactly one event, with a new EventId.

Severity: WinCC priority 1..1000 is the OPC UA Severity 1..1000 unchanged (both scales run from low to high);
anything below 1 (or missing) is 1, anything above 1000 is 1000.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from bridge.wincc.models import Alarm, AlarmState

__all__ = ["AlarmBook", "Change", "Condition", "Reason", "new_event_id", "severity"]


def severity(priority: int) -> int:
    return min(1000, max(1, int(priority)))


def new_event_id() -> bytes:
    return os.urandom(16)


class Reason(StrEnum):
    """Why an event was emitted (its Message stays WinCC's text; the reason goes to logs and tests)."""

    came = "came"
    went = "went"
    acked = "acked"
    came_again = "came_again"  # a new occurrence of an alarm we still held
    gone = "gone"  # WinCC stopped listing it: went and acknowledged
    comment = "comment"
    quality = "quality"  # WinCC became unreachable or came back


@dataclass(slots=True)
class Condition:
    """What the bridge knows about one WinCC alarm in its current cycle."""

    alarm_id: str
    tag: str | None
    text: str
    alarm_class: str
    severity: int
    active: bool
    acked: bool
    time: datetime  # WinCC's timestamp of the last state change
    value: object = None
    last_severity: int = 0
    comment: str = ""
    comment_time: datetime | None = None
    user: str = ""  # ClientUserId: who acknowledged or commented last
    good: bool = True  # Quality: False while WinCC is unreachable
    quality_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    severity_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_id: bytes = b""
    cycle_event_ids: set[bytes] = field(default_factory=set)

    @property
    def retain(self) -> bool:
        return self.active or not self.acked

    def stamp(self) -> bytes:
        """A new EventId for the next event of this condition (kept: Acknowledge may name any of this cycle)."""
        self.event_id = new_event_id()
        self.cycle_event_ids.add(self.event_id)
        return self.event_id

    def new_cycle(self, alarm: Alarm) -> None:
        self.comment, self.comment_time, self.user = "", None, ""
        self.cycle_event_ids = set()
        self._take(alarm)

    def _take(self, alarm: Alarm) -> None:
        sev = severity(alarm.priority)
        if sev != self.severity:
            self.last_severity, self.severity, self.severity_time = self.severity, sev, datetime.now(UTC)
        self.tag, self.text, self.alarm_class, self.value = alarm.tag, alarm.text, alarm.alarm_class, alarm.value
        self.active = alarm.state is AlarmState.came
        self.acked = alarm.acknowledged
        self.time = alarm.timestamp


@dataclass(frozen=True, slots=True)
class Change:
    """One event to emit for `condition` (already in its new state). `forget`: the last event of the cycle."""

    condition: Condition
    reason: Reason
    forget: bool = False


class AlarmBook:
    """Every condition the bridge holds, by WinCC alarm id."""

    def __init__(self) -> None:
        self.conditions: dict[str, Condition] = {}

    def __len__(self) -> int:
        return len(self.conditions)

    def get(self, alarm_id: str) -> Condition | None:
        return self.conditions.get(alarm_id)

    def reconcile(self, active: Iterable[Alarm], now: datetime | None = None, prefix: str = "") -> list[Change]:
        """Take one snapshot of WinCC's active list; return the events it implies, in order. With several WinCC
        stations each answers for the alarm ids starting with its `prefix` only."""
        now = now or datetime.now(UTC)
        changes: list[Change] = []
        seen: set[str] = set()
        for alarm in active:
            if alarm.id in seen:
                continue  # a list naming an id twice: the first entry wins
            seen.add(alarm.id)
            change = self._one(alarm, now)
            if change is not None:
                changes.append(change)
        for alarm_id in [i for i in self.conditions if i not in seen and i.startswith(prefix)]:
            cond = self.conditions[alarm_id]
            cond.active, cond.acked, cond.time, cond.good = False, True, now, True
            changes.append(self._emit(cond, Reason.gone))
        return changes

    def update(self, changed: Iterable[Alarm], gone: Iterable[str], now: datetime | None = None) -> list[Change]:
        """Take the alarms WinCC pushed as changed (each with its whole new state) and the ids that left its active
        list; unlike `reconcile`, alarms not named keep their state."""
        now = now or datetime.now(UTC)
        changes = [c for c in (self._one(alarm, now) for alarm in changed) if c is not None]
        for alarm_id in gone:
            cond = self.conditions.get(alarm_id)
            if cond is not None:
                cond.active, cond.acked, cond.time, cond.good = False, True, now, True
                changes.append(self._emit(cond, Reason.gone))
        return changes

    def _one(self, alarm: Alarm, now: datetime) -> Change | None:
        cond = self.conditions.get(alarm.id)
        active = alarm.state is AlarmState.came
        if cond is None:
            if not active and alarm.acknowledged:
                return None  # a finished cycle (restservice state 4): nothing to show
            cond = Condition(
                alarm.id,
                alarm.tag,
                alarm.text,
                alarm.alarm_class,
                severity(alarm.priority),
                active,
                alarm.acknowledged,
                alarm.timestamp,
                alarm.value,
                quality_time=now,
            )
            self.conditions[alarm.id] = cond
            return self._emit(cond, Reason.came if active else Reason.went)
        if not cond.good:
            cond.good, cond.quality_time = True, now
            quality_changed = True
        else:
            quality_changed = False
        if active and (not cond.active or (not alarm.acknowledged and (cond.acked or alarm.timestamp > cond.time))):
            cond.new_cycle(alarm)
            return self._emit(cond, Reason.came_again)
        if cond.active and not active:
            cond._take(alarm)
            return self._emit(cond, Reason.went)
        if not cond.acked and alarm.acknowledged:
            cond._take(alarm)
            return self._emit(cond, Reason.acked)
        if quality_changed:
            return self._emit(cond, Reason.quality)
        return None

    def _emit(self, cond: Condition, reason: Reason) -> Change:
        cond.stamp()
        forget = not cond.retain
        if forget:
            self.conditions.pop(cond.alarm_id, None)
        return Change(cond, reason, forget)

    # ---- what the UA side does to a condition -------------------------------------------------------------------
    def acknowledged(self, cond: Condition, comment: str, user: str, now: datetime | None = None) -> Change:
        """Acknowledge succeeded in WinCC: the condition is acked with the operator's comment."""
        now = now or datetime.now(UTC)
        cond.acked = True
        cond.user = user
        if comment:
            cond.comment, cond.comment_time = comment, now
        cond.time = now
        return self._emit(cond, Reason.acked)

    def commented(self, cond: Condition, comment: str, user: str, now: datetime | None = None) -> Change:
        now = now or datetime.now(UTC)
        cond.comment, cond.comment_time, cond.user = comment, now, user
        return self._emit(cond, Reason.comment)

    def unreachable(self, now: datetime | None = None, prefix: str = "") -> list[Change]:
        """WinCC (the station of `prefix`) did not answer: every condition keeps its state, Quality turns bad (one
        event each, once)."""
        now = now or datetime.now(UTC)
        out: list[Change] = []
        for cond in self.conditions.values():
            if cond.good and cond.alarm_id.startswith(prefix):
                cond.good, cond.quality_time = False, now
                cond.stamp()
                out.append(Change(cond, Reason.quality))
        return out

    def retained(self) -> list[Condition]:
        return [c for c in self.conditions.values() if c.retain]

    def counts(self) -> tuple[int, int]:
        """(active, unacknowledged) conditions."""
        conds = self.conditions.values()
        return sum(c.active for c in conds), sum(not c.acked for c in conds)
