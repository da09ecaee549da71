"""OPC UA Part 13 aggregates over raw archive values, in one pass. Pure computation, no I/O.

Raw samples arrive oldest first (the archive's order) and are pushed through `IntervalEngine`, which keeps only
the samples of the interval being filled (plus, during a run of unusable values, the intervals still waiting for
the next usable one) and hands each finished interval to its aggregate function: O(samples + intervals) time and
no whole range in memory. `compute` and `at_times` are the same engines over a finished sequence.

Conventions, each from OPC 10000-13 (v1.05) unless noted:
- Intervals (5.4.2.2, Table 12): [start, start + ProcessingInterval) ...; ProcessingInterval 0 (or >= the range)
  means one interval; the last interval holds the rest and may be shorter (Partial bit, 5.3.3.2). StartTime >
  EndTime: the intervals start at StartTime and run backwards, [Start, Start - Int), ..., so the short interval is
  the one at EndTime; a backward interval includes its start (its later edge) and excludes its end. Every result
  is stamped with its interval's start, except where an aggregate says otherwise.
- Configuration (4.2.1.2 AggregateConfigurationType): TreatUncertainAsBad decides whether Uncertain raw values
  are used like Good ones (the result is still Uncertain when one was used) or skipped like Bad ones;
  PercentDataBad / PercentDataGood drive the "PercentValues" status calculation of 5.4.3.2.1; UseSlopedExtrapolation
  picks sloped or stepped extrapolation after the last usable value (3.1.8).
- Bounds: Interpolative, TimeAverage and Total use Interpolated Bounding Values (3.1.8): the nearest usable values
  around a time, a sloped line between them; skipping unusable values to find them makes the result
  Uncertain_DataSubNormal. DurationGood / PercentGood use the status of the value at or before the interval start.
- Status per aggregate (5.4.3.x "StatusCode Calculations"): Average and Count count values (PercentValues);
  the others use their custom rules, cited at each function. An interval before the first or after the last
  archived value answers Bad_NoData where the aggregate's "Before Start of Data" / "After End of Data" says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asyncua import ua

from bridge.opcua.history.windows import (
    CALCULATED,
    INTERPOLATED,
    MULTI_VALUE,
    PARTIAL,
    RAW,
    UNCERTAIN,
    AggregateSettings,
    IntervalPlan,
    Sample,
    Slot,
    Window,
    intervals,
)
from bridge.opcua.history.windows import Line as _Line
from bridge.opcua.history.windows import no_data as _no_data
from bridge.opcua.history.windows import partial_bit as _partial
from bridge.opcua.history.windows import percent_values as _percent_values
from bridge.opcua.history.windows import result as _dv

__all__ = [
    "AGGREGATES",
    "AggregateSettings",
    "AtTimeEngine",
    "IntervalEngine",
    "IntervalPlan",
    "Sample",
    "Slot",
    "at_times",
    "compute",
    "intervals",
]  # Sample, Slot, IntervalPlan, AggregateSettings and intervals live in windows.py; re-exported here

S = ua.StatusCodes


Aggregate = Callable[[Window, AggregateSettings], ua.DataValue]


def _interpolative(w: Window, cfg: AggregateSettings) -> ua.DataValue:
    # 5.4.3.4 Table 15: the Interpolated Bounding Value at the interval start; Raw bit when a value sits exactly
    # there, Interpolated otherwise; Uncertain when unusable values were skipped, Uncertain values used or the
    # value was extrapolated; Bad_NoData without a start value. The Partial bit is never set.
    stamp = w.slot.stamp
    at = _Line(w, cfg).at(stamp)
    if at is None:
        return _no_data(stamp)
    value, bits, uncertain = at
    return _dv(value, stamp, bits, UNCERTAIN if uncertain else S.Good)


def _average(w: Window, cfg: AggregateSettings) -> ua.DataValue:
    # 5.4.3.5 Table 16: the mean of the usable raw values; PercentValues status; Calculated always, Partial not
    # set; Bad_NoData without usable values.
    stamp = w.slot.stamp
    vals = [s.value for s in w.inside if cfg.usable(s)]
    if not vals:
        return _no_data(stamp)
    base = _percent_values(w.inside, cfg)
    value = None if base == S.Bad else math.fsum(vals) / len(vals)
    return _dv(value, stamp, CALCULATED, base)


def _count(w: Window, cfg: AggregateSettings) -> ua.DataValue:
    # 5.4.3.21 Table 32: the number of usable raw values (0 when there are none); PercentValues status;
    # Bad_NoData before the start or after the end of the data.
    stamp = w.slot.stamp
    if w.before_data or w.after_data:
        return _no_data(stamp)
    n = sum(1 for s in w.inside if cfg.usable(s))
    return _dv(n, stamp, CALCULATED | _partial(w), _percent_values(w.inside, cfg), ua.VariantType.Int32)


def _time_weighted(total: bool) -> Aggregate:
    # 5.4.3.6 Table 17 (TimeAverage) and 5.4.3.8 (Total): the area under the sloped line from the interpolated
    # start bound through every usable value to the interpolated end bound, divided by the interval for
    # TimeAverage. Custom status: Uncertain_DataSubNormal if unusable values were skipped, Uncertain values used or
    # the end extrapolated; no start bound -> the part of the interval from the first value (Partial);
    # Bad_NoData before the start of data.
    def agg(w: Window, cfg: AggregateSettings) -> ua.DataValue:
        slot = w.slot
        stamp, t0, t1 = slot.stamp, slot.t0, slot.t1
        line = _Line(w, cfg)
        bits = CALCULATED | _partial(w)
        uncertain = any(s.uncertain or not cfg.usable(s) for s in w.inside)
        start = line.at(t0)
        if start is None:
            first = line.first_after(t0, t1)
            if first is None:
                return _no_data(stamp)
            ta, va = first.ts, first.value
            bits |= PARTIAL
        else:
            ta, (va, _, unc) = t0, start
            uncertain |= unc
        end = line.at(t1)
        assert end is not None  # some usable value at or before t1 exists
        vb, _, unc = end
        uncertain |= unc
        seconds = (t1 - ta).total_seconds()
        if seconds <= 0:
            return _no_data(stamp)
        points = [(ta, va)] + [(p.ts, p.value) for p in line.between(ta, t1)] + [(t1, vb)]
        area = math.fsum(
            (a + b) / 2 * (tb - tx).total_seconds() for (tx, a), (tb, b) in zip(points, points[1:], strict=False)
        )
        return _dv(area if total else area / seconds, stamp, bits, UNCERTAIN if uncertain else S.Good)

    return agg


def _extreme(maximum: bool, actual_time: bool) -> Aggregate:
    # 5.4.3.10-13 Tables 21-24: the smallest / largest usable raw value (the oldest one if several; MultipleValues
    # bit then). Custom status: Uncertain_DataSubNormal if unusable values exist in the interval or the extreme is
    # an Uncertain value; Bad_NoData without usable values. Minimum/Maximum: stamped at the interval start, Raw
    # bit if the extreme sits there, else Calculated. *ActualTime: stamped with the raw time, Raw bit unless the
    # status became Uncertain (then Calculated).
    def agg(w: Window, cfg: AggregateSettings) -> ua.DataValue:
        stamp = w.slot.stamp
        best: Sample | None = None
        ties = 0
        unusable = False
        for s in w.inside:
            if not cfg.usable(s):
                unusable = True
            elif best is None or (s.value > best.value if maximum else s.value < best.value):
                best, ties = s, 1
            elif s.value == best.value:
                ties += 1
        if best is None:
            return _no_data(stamp)
        uncertain = unusable or best.uncertain
        if actual_time:
            bits, ts = (CALCULATED if uncertain else RAW), best.ts
        else:
            bits, ts = (RAW if best.ts == stamp and not uncertain else CALCULATED), stamp
        bits |= (MULTI_VALUE if ties > 1 else 0) | _partial(w)
        return _dv(best.value, ts, bits, UNCERTAIN if uncertain else S.Good)

    return agg


def _range(w: Window, cfg: AggregateSettings) -> ua.DataValue:
    # 5.4.3.14 Table 25: max - min of the usable raw values; Uncertain_DataSubNormal if unusable values exist or an
    # extreme is Uncertain; Bad_NoData without usable values.
    stamp = w.slot.stamp
    vals = [s for s in w.inside if cfg.usable(s)]
    if not vals:
        return _no_data(stamp)
    lo = min(vals, key=lambda s: s.value)
    hi = max(vals, key=lambda s: s.value)
    uncertain = len(vals) < len(w.inside) or lo.uncertain or hi.uncertain
    return _dv(hi.value - lo.value, stamp, CALCULATED | _partial(w), UNCERTAIN if uncertain else S.Good)


def _start_end(last: bool) -> Aggregate:
    # 5.4.3.25/26 Tables 36/37: the earliest / latest raw value in the interval, whatever its status, returned
    # with that status and its own timestamp (Raw bit); Bad_NoData if the interval holds no value.
    def agg(w: Window, cfg: AggregateSettings) -> ua.DataValue:
        if not w.inside:
            return _no_data(w.slot.stamp)
        s = w.inside[-1] if last else w.inside[0]
        return _dv(s.value, s.ts, RAW | _partial(w), s.status)

    return agg


def _delta(w: Window, cfg: AggregateSettings) -> ua.DataValue:
    # 5.4.3.27 Table 38: latest minus earliest usable raw value; Uncertain_DataSubNormal if unusable values were
    # skipped looking for them (or they are Uncertain); Bad_NoData without usable values.
    stamp = w.slot.stamp
    vals = [s for s in w.inside if cfg.usable(s)]
    if not vals:
        return _no_data(stamp)
    first, last = vals[0], vals[-1]
    uncertain = first is not w.inside[0] or last is not w.inside[-1] or first.uncertain or last.uncertain
    return _dv(last.value - first.value, stamp, CALCULATED | _partial(w), UNCERTAIN if uncertain else S.Good)


def _duration(percent: bool) -> Aggregate:
    # 5.4.3.31/33 Tables 42/44: the time (ms) / share (%) of the interval during which the latest value was Good;
    # the first region takes the status of the value at or before the interval start (Bad if there is none).
    # Always Good, Calculated; Bad_NoData before the start or after the end of the data.
    def agg(w: Window, cfg: AggregateSettings) -> ua.DataValue:
        slot = w.slot
        stamp = slot.stamp
        if w.before_data or w.after_data:
            return _no_data(stamp)
        good = w.prev.good if w.prev is not None else False
        t = slot.t0
        total = timedelta(0)
        for s in w.inside:
            if good:
                total += s.ts - t
            t, good = s.ts, s.good
        if good:
            total += slot.t1 - t
        span = slot.t1 - slot.t0
        value = 100.0 * (total / span) if percent else total / timedelta(milliseconds=1)
        return _dv(value, stamp, CALCULATED | _partial(w))

    return agg


O = ua.ObjectIds
AGGREGATES: dict[int, tuple[str, Aggregate]] = {
    O.AggregateFunction_Interpolative: ("Interpolative", _interpolative),
    O.AggregateFunction_Average: ("Average", _average),
    O.AggregateFunction_TimeAverage: ("TimeAverage", _time_weighted(total=False)),
    O.AggregateFunction_Total: ("Total", _time_weighted(total=True)),
    O.AggregateFunction_Minimum: ("Minimum", _extreme(maximum=False, actual_time=False)),
    O.AggregateFunction_Maximum: ("Maximum", _extreme(maximum=True, actual_time=False)),
    O.AggregateFunction_MinimumActualTime: ("MinimumActualTime", _extreme(maximum=False, actual_time=True)),
    O.AggregateFunction_MaximumActualTime: ("MaximumActualTime", _extreme(maximum=True, actual_time=True)),
    O.AggregateFunction_Range: ("Range", _range),
    O.AggregateFunction_Count: ("Count", _count),
    O.AggregateFunction_Start: ("Start", _start_end(last=False)),
    O.AggregateFunction_End: ("End", _start_end(last=True)),
    O.AggregateFunction_Delta: ("Delta", _delta),
    O.AggregateFunction_DurationGood: ("DurationGood", _duration(percent=False)),
    O.AggregateFunction_PercentGood: ("PercentGood", _duration(percent=True)),
}


# ---- the one-pass engines -----------------------------------------------------------------------------------
class IntervalEngine:
    """Pushes time-ordered samples through consecutive intervals (`slots`, oldest first) and computes one
    aggregate per interval as soon as its surroundings are known. Each sample and each interval is handled once.

    Feed every sample that can matter: the last ones before the first interval (the bounds), everything inside,
    and the first ones after the last interval, then call `finish`. Samples out of time order are ignored."""

    def __init__(self, aggregate_id: int, slots: Sequence[Slot], settings: AggregateSettings) -> None:
        self._fn = AGGREGATES[aggregate_id][1]
        self._slots = slots
        self._cfg = settings
        self._i = 0  # the interval being filled
        self._inside: list[Sample] = []
        self._around: tuple[Sample | None, Sample | None, Sample | None] | None = None
        self._last: Sample | None = None
        self._usable1: Sample | None = None
        self._usable2: Sample | None = None
        self._pending: list[Window] = []  # closed intervals waiting for the next usable sample
        self._done: list[ua.DataValue] = []
        self.ignored = 0

    @property
    def waiting(self) -> bool:
        """Whether samples after the last interval could still change a result."""
        return self._i < len(self._slots) or bool(self._pending)

    def feed(self, s: Sample) -> None:
        last = self._last
        if last is not None and s.ts < last.ts:
            self.ignored += 1
            return
        slots = self._slots
        while self._i < len(slots) and slots[self._i].passed(s.ts):
            self._close(s)
        if self._i < len(slots) and slots[self._i].holds(s.ts):
            if self._around is None:
                self._around = (last, self._usable1, self._usable2)
            self._inside.append(s)
        self._last = s
        if self._cfg.usable(s):
            self._usable2, self._usable1 = self._usable1, s
            if self._pending:
                self._resolve(s)

    def feed_all(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            self.feed(s)

    def drain(self) -> list[ua.DataValue]:
        """The results finished so far (oldest interval first); each is returned once."""
        out, self._done = self._done, []
        return out

    def finish(self) -> list[ua.DataValue]:
        """No more samples: finish every interval (the last ones without a usable value after them)."""
        while self._i < len(self._slots):
            self._close(None)
        self._resolve(None)
        return self.drain()

    def _close(self, nxt: Sample | None) -> None:
        prev, usable1, usable2 = self._around or (self._last, self._usable1, self._usable2)
        self._pending.append(Window(self._slots[self._i], self._inside, prev, usable1, usable2, nxt))
        self._inside, self._around = [], None
        self._i += 1

    def _resolve(self, next_usable: Sample | None) -> None:
        for w in self._pending:
            w.next_usable = next_usable
            self._done.append(self._fn(w, self._cfg))
        self._pending.clear()


def compute(
    aggregate_id: int,
    samples: Iterable[Sample],
    start: datetime,
    end: datetime,
    interval_ms: float,
    settings: AggregateSettings | None = None,
) -> list[ua.DataValue]:
    """One DataValue per interval, in request order. `samples`: raw values sorted by time, including the ones
    around the range that serve as bounds."""
    plan = IntervalPlan(start, end, interval_ms)
    engine = IntervalEngine(aggregate_id, plan.slots(0, plan.count), settings or AggregateSettings())
    engine.feed_all(samples)
    out = engine.finish()
    if plan.reverse:
        out.reverse()
    return out


@dataclass(slots=True)
class _Probe:
    t: datetime
    index: int
    before: Sample | None  # the last sample before t (any status)
    usable1: Sample | None  # the last usable one before t
    usable2: Sample | None  # the usable one before that
    exact: Sample | None  # the first sample exactly at t
    exact_usable: Sample | None
    bad_at: bool  # an unusable sample exactly at t
    after: Sample | None = None  # the first sample after t
    after_usable: Sample | None = None


class AtTimeEngine:
    """ReadAtTime (OPC 10000-11 6.5.5.2) over time-ordered samples in one pass: a raw value at a requested time is
    returned as it is (Raw bit), otherwise the value is interpolated from the bounds around it (Interpolated bit)
    with Simple Bounding Values (Part 13 3.1.9: the nearest raw values, whatever their status) or Interpolated
    Bounding Values (3.1.8: the nearest usable values), as the request asks. Results come in request order."""

    def __init__(self, times: Sequence[datetime], simple: bool, settings: AggregateSettings) -> None:
        self._order = sorted(range(len(times)), key=times.__getitem__)
        self._times = [times[i] for i in self._order]
        self._simple = simple
        self._cfg = settings
        self._j = 0
        self._results: list[ua.DataValue | None] = [None] * len(times)
        self._pending: list[_Probe] = []
        self._unmatched = 0  # pending[_unmatched:] still lack their first sample after t
        self._last: Sample | None = None
        self._usable1: Sample | None = None
        self._usable2: Sample | None = None
        self._group: tuple[Sample | None, Sample | None, Sample | None] = (None, None, None)  # state before _group_ts
        self._group_ts: datetime | None = None
        self._group_first: Sample | None = None
        self._group_usable: Sample | None = None
        self._group_bad = False

    def feed(self, s: Sample) -> None:
        if self._last is not None and s.ts < self._last.ts:
            return
        times = self._times
        while self._j < len(times) and times[self._j] < s.ts:
            self._pending.append(self._probe(self._j))
            self._j += 1
        for p in self._pending[self._unmatched :]:
            p.after = s
        self._unmatched = len(self._pending)
        usable = self._cfg.usable(s)
        if usable and self._pending:
            self._resolve(s)
        if s.ts != self._group_ts:
            self._group = (self._last, self._usable1, self._usable2)
            self._group_ts, self._group_first, self._group_usable, self._group_bad = s.ts, s, None, False
        if usable:
            if self._group_usable is None:
                self._group_usable = s
            self._usable2, self._usable1 = self._usable1, s
        else:
            self._group_bad = True
        self._last = s

    def feed_all(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            self.feed(s)

    def finish(self) -> list[ua.DataValue]:
        while self._j < len(self._times):
            self._pending.append(self._probe(self._j))
            self._j += 1
        self._resolve(None)
        return [r for r in self._results if r is not None]

    def _probe(self, j: int) -> _Probe:
        t = self._times[j]
        if self._group_ts == t:
            before, u1, u2 = self._group
            return _Probe(t, self._order[j], before, u1, u2, self._group_first, self._group_usable, self._group_bad)
        return _Probe(t, self._order[j], self._last, self._usable1, self._usable2, None, None, False)

    def _resolve(self, after_usable: Sample | None) -> None:
        for p in self._pending:
            p.after_usable = after_usable
            self._results[p.index] = self._simple_value(p) if self._simple else self._interpolated_value(p)
        self._pending.clear()
        self._unmatched = 0

    def _extrapolate(self, p: _Probe, last: Sample) -> float:
        before = p.usable2 if last is p.usable1 else p.usable1
        if not self._cfg.use_sloped_extrapolation or before is None or before.ts == last.ts:
            return last.value
        return last.value + (last.value - before.value) * ((p.t - last.ts) / (last.ts - before.ts))

    def _interpolated_value(self, p: _Probe) -> ua.DataValue:
        # 3.1.8: the nearest usable values around t; skipped unusable values or Uncertain ones make the result
        # Uncertain_DataSubNormal; after the last usable value it is extrapolated (Uncertain); none before: Bad_NoData
        if p.exact_usable is not None:
            return _dv(p.exact_usable.value, p.t, RAW, UNCERTAIN if p.exact_usable.uncertain else S.Good)
        b, a = p.usable1, p.after_usable
        if b is None:
            return _no_data(p.t)
        if a is None:
            return _dv(self._extrapolate(p, b), p.t, INTERPOLATED, UNCERTAIN)
        skipped = p.before is not b or p.bad_at or p.after is not a
        uncertain = skipped or b.uncertain or a.uncertain
        value = b.value + (a.value - b.value) * ((p.t - b.ts) / (a.ts - b.ts))
        return _dv(value, p.t, INTERPOLATED, UNCERTAIN if uncertain else S.Good)

    def _simple_value(self, p: _Probe) -> ua.DataValue:
        # 3.1.9: a raw value at t is the bound (with its own status); otherwise the raw values just before and
        # after t: none or a Bad one before -> Bad_NoData; an Uncertain one before, or a Bad / Uncertain one
        # after -> Uncertain_DataSubNormal (a Bad one after is not interpolated towards: the value is held)
        if p.exact is not None:
            return _dv(p.exact.value, p.t, RAW, p.exact.status)
        b, a = p.before, p.after
        if b is None or not (b.good or b.uncertain):
            return _no_data(p.t)
        if a is None:
            return _dv(self._extrapolate(p, b), p.t, INTERPOLATED, UNCERTAIN)
        uncertain = not b.good or not a.good
        if a.good or a.uncertain:
            value = b.value + (a.value - b.value) * ((p.t - b.ts) / (a.ts - b.ts))
        else:
            value = b.value
        return _dv(value, p.t, INTERPOLATED, UNCERTAIN if uncertain else S.Good)


def at_times(
    samples: Iterable[Sample], times: Sequence[datetime], simple: bool = True, settings: AggregateSettings | None = None
) -> list[ua.DataValue]:
    """ReadAtTime over sorted samples; one DataValue per requested time, in request order."""
    engine = AtTimeEngine(times, simple, settings or AggregateSettings())
    engine.feed_all(samples)
    return engine.finish()
