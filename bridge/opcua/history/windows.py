"""The ground the Part 13 aggregates (aggregates.py) stand on: raw samples, the request's aggregate settings, the
processing intervals, one interval's window with its interpolated bounding values, and the result DataValues with
their status bits. Conventions as in aggregates.py's docstring. Pure computation, no I/O."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asyncua import ua

__all__ = [
    "CALCULATED",
    "INTERPOLATED",
    "MULTI_VALUE",
    "PARTIAL",
    "RAW",
    "UNCERTAIN",
    "AggregateSettings",
    "IntervalPlan",
    "Line",
    "Sample",
    "Slot",
    "Window",
    "intervals",
    "no_data",
    "partial_bit",
    "percent_values",
    "result",
]

S = ua.StatusCodes
# StatusCode InfoType "DataValue" (bit 10) and the historian bits of OPC 10000-4 7.39 / 10000-13 5.3.3
_INFO = 0x400
RAW, CALCULATED, INTERPOLATED = 0x0, 0x1, 0x2
PARTIAL, MULTI_VALUE = 0x4, 0x10
UNCERTAIN = S.UncertainDataSubNormal
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Sample:
    """One raw archive value. `good` / `uncertain` give its severity (neither: Bad); `code` is its StatusCode
    (None: plain Good, Uncertain or Bad)."""

    ts: datetime
    value: float
    good: bool
    uncertain: bool = False
    code: int | None = None

    @property
    def status(self) -> int:
        if self.code is not None:
            return self.code
        return S.Good if self.good else (S.Uncertain if self.uncertain else S.Bad)


@dataclass(frozen=True, slots=True)
class AggregateSettings:
    """The AggregateConfiguration of one request (Part 13 4.2.1.2); the defaults are the spec's defaults."""

    treat_uncertain_as_bad: bool = True
    percent_data_bad: int = 100
    percent_data_good: int = 100
    use_sloped_extrapolation: bool = False

    def usable(self, s: Sample) -> bool:
        return s.good or (s.uncertain and not self.treat_uncertain_as_bad)


# ---- intervals ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Slot:
    """One interval. t0 < t1 in time; forward intervals are [t0, t1) and start at t0, backward ones are
    (t0, t1] and start at t1 (Part 13 5.4.2.2)."""

    t0: datetime
    t1: datetime
    partial: bool = False
    reverse: bool = False

    @property
    def stamp(self) -> datetime:
        return self.t1 if self.reverse else self.t0

    def holds(self, ts: datetime) -> bool:
        return self.t0 < ts <= self.t1 if self.reverse else self.t0 <= ts < self.t1

    def passed(self, ts: datetime) -> bool:
        """ts lies after the interval (in time)."""
        return ts > self.t1 if self.reverse else ts >= self.t1


class IntervalPlan:
    """The intervals of one ReadProcessed request (Part 13 5.4.2.2 Table 12), computed on demand by index so a
    long request costs nothing until its intervals are read. Raises ValueError for StartTime == EndTime (Table 12:
    Bad_InvalidArgument)."""

    def __init__(self, start: datetime, end: datetime, interval_ms: float) -> None:
        if start == end:
            raise ValueError("StartTime equals EndTime")
        self.start, self.end = start, end
        self.reverse = start > end
        span = abs(end - start)
        step_us = max(1, round(interval_ms * 1000)) if interval_ms > 0 else 0
        self._step = timedelta(microseconds=step_us) if 0 < step_us else None
        if self._step is None or self._step >= span:
            # one interval; it is Partial only when it is shorter than the interval the client asked for
            self.count = 1
            self._single_partial = self._step is not None and self._step > span
        else:
            span_us = span // _MICRO
            self.count = -(-span_us // step_us)
            self._single_partial = False

    def slot(self, i: int) -> Slot:
        """Interval i in request order (0 starts at StartTime)."""
        if self._step is None or self.count == 1:
            lo, hi = (self.end, self.start) if self.reverse else (self.start, self.end)
            return Slot(lo, hi, self._single_partial, self.reverse)
        if self.reverse:
            a = self.start - self._step * i
            b = a - self._step
            return Slot(max(b, self.end), a, b < self.end, True)
        a = self.start + self._step * i
        b = a + self._step
        return Slot(a, min(b, self.end), b > self.end, False)

    def slots(self, first: int, count: int) -> list[Slot]:
        """Intervals first .. first + count - 1, in time order (oldest first) whatever the direction."""
        idx = range(first, min(first + count, self.count))
        return [self.slot(i) for i in (reversed(idx) if self.reverse else idx)]


def intervals(start: datetime, end: datetime, interval_ms: float) -> list[tuple[datetime, datetime, bool]]:
    """[(interval start, interval end, partial?)] in request order; a backward request gives start > end."""
    if start == end:
        return []
    plan = IntervalPlan(start, end, interval_ms)
    out = []
    for i in range(plan.count):
        s = plan.slot(i)
        out.append((s.t1, s.t0, s.partial) if s.reverse else (s.t0, s.t1, s.partial))
    return out


# ---- one interval and its surroundings ----------------------------------------------------------------------
@dataclass(slots=True)
class Window:
    """What an aggregate sees of one interval: its raw samples and the nearest samples around it."""

    slot: Slot
    inside: list[Sample]
    prev: Sample | None = None  # the last sample before the interval (any status)
    prev_usable: Sample | None = None  # the last usable one before it
    prev_usable2: Sample | None = None  # the usable one before that (sloped extrapolation)
    nxt: Sample | None = None  # the first sample after the interval (any status)
    next_usable: Sample | None = None  # the first usable one after it

    @property
    def before_data(self) -> bool:
        """Part 13 "Before Start of Data": nothing archived up to the end of this interval."""
        return self.prev is None and not self.inside

    @property
    def after_data(self) -> bool:
        """Part 13 "After End of Data": nothing archived from the start of this interval on."""
        return not self.inside and self.nxt is None


class Line:
    """The sloped line through a window's usable samples and its bounds (Interpolated Bounding Values, Part 13
    3.1.8), and for each gap between two of them whether unusable samples were skipped there."""

    __slots__ = ("_cfg", "_extra", "gap_bad", "pts", "times")

    def __init__(self, w: Window, cfg: AggregateSettings) -> None:
        seq: list[Sample] = []
        if w.prev_usable is not None:
            seq.append(w.prev_usable)
        if w.prev is not None and w.prev is not w.prev_usable:
            seq.append(w.prev)  # stands for the unusable run between prev_usable and the interval
        seq.extend(w.inside)
        if w.nxt is not None and w.nxt is not w.next_usable:
            seq.append(w.nxt)
        if w.next_usable is not None:
            seq.append(w.next_usable)
        usable = cfg.usable
        pts: list[Sample] = []
        gap_bad: list[bool] = []
        bad = False
        for s in seq:
            if usable(s):
                pts.append(s)
                gap_bad.append(bad)
                bad = False
            else:
                bad = True
        self.pts, self.gap_bad, self._cfg = pts, gap_bad, cfg
        self.times = [p.ts for p in pts]
        self._extra = w.prev_usable2

    def at(self, t: datetime) -> tuple[float, int, bool] | None:
        """(value, RAW or INTERPOLATED, uncertain?) at t; None when no usable value exists at or before t."""
        pts, times = self.pts, self.times
        i = bisect.bisect_left(times, t)
        if i < len(pts) and times[i] == t:
            return pts[i].value, RAW, pts[i].uncertain
        if i == 0:
            return None
        before = pts[i - 1]
        if i == len(pts):  # after the last usable value: extrapolated, Uncertain (3.1.8)
            return self._extrapolate(t), INTERPOLATED, True
        after = pts[i]
        frac = (t - before.ts) / (after.ts - before.ts)
        uncertain = self.gap_bad[i] or before.uncertain or after.uncertain
        return before.value + (after.value - before.value) * frac, INTERPOLATED, uncertain

    def _extrapolate(self, t: datetime) -> float:
        last = self.pts[-1]
        if not self._cfg.use_sloped_extrapolation:
            return last.value
        before = self.pts[-2] if len(self.pts) > 1 else self._extra
        if before is None or before.ts == last.ts:
            return last.value
        return last.value + (last.value - before.value) * ((t - last.ts) / (last.ts - before.ts))

    def between(self, a: datetime, b: datetime) -> list[Sample]:
        """Usable samples with a < ts < b."""
        return self.pts[bisect.bisect_right(self.times, a) : bisect.bisect_left(self.times, b)]

    def first_after(self, a: datetime, b: datetime) -> Sample | None:
        """The first usable sample with a < ts <= b."""
        i = bisect.bisect_right(self.times, a)
        return self.pts[i] if i < len(self.pts) and self.times[i] <= b else None


# ---- results ------------------------------------------------------------------------------------------------
def result(
    value: float | int | None, ts: datetime, bits: int, base: int = S.Good, vt: ua.VariantType = ua.VariantType.Double
) -> ua.DataValue:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        variant = ua.Variant(None, ua.VariantType.Null)
    else:
        variant = ua.Variant(value, vt)
    return ua.DataValue(variant, StatusCode=ua.StatusCode(base | _INFO | bits), SourceTimestamp=ts, ServerTimestamp=ts)


def no_data(ts: datetime) -> ua.DataValue:
    return ua.DataValue(StatusCode=ua.StatusCode(S.BadNoData), SourceTimestamp=ts, ServerTimestamp=ts)


def partial_bit(w: Window) -> int:
    return PARTIAL if w.slot.partial else 0


def percent_values(inside: Sequence[Sample], cfg: AggregateSettings) -> int:
    """Part 13 5.4.3.2.1 for aggregates that count values: Bad if the share of unusable values reaches
    PercentDataBad, else Good if the share of usable ones reaches PercentDataGood, else Uncertain_DataSubNormal.
    Uncertain values used as good ones still make the result Uncertain (4.2.1.2)."""
    total = len(inside)
    usable = [s for s in inside if cfg.usable(s)]
    bad = total - len(usable)
    if bad and 100 * bad >= cfg.percent_data_bad * total:
        return S.Bad
    if bad and 100 * len(usable) < cfg.percent_data_good * total:
        return UNCERTAIN
    return UNCERTAIN if any(s.uncertain for s in usable) else S.Good
