"""OPC UA Part 13 aggregates over raw archive values. Pure functions, no I/O.

Conventions (Part 13 with the server defaults this bridge advertises: TreatUncertainAsBad=true, sloped
interpolation, PercentDataGood=100, PercentDataBad=100):
- Intervals are [start, start + ProcessingInterval); ProcessingInterval 0 means one interval [start, end). The last
  interval may be shorter than the others: its result carries the Partial bit.
- Only Good raw values enter a calculation. An interval without one answers BadNoData (Count answers 0).
- Interpolative, TimeAverage, Total, DurationGood and PercentGood use the bounding values around the interval: the
  last Good value before a point and the first after it, interpolated linearly (Interpolated bit where a value
  was computed at a time with no raw value).
- Results are stamped at the interval start, except MinimumActualTime / MaximumActualTime (the raw timestamp of
  the extreme value) and Start / End (the raw timestamps of the first / last value). Every processed result carries
  the Calculated bit, except Start/End/*ActualTime which are raw values (Raw) and Interpolative (Interpolated).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asyncua import ua

__all__ = ["AGGREGATES", "Sample", "compute", "interpolate"]

S = ua.StatusCodes
# StatusCode InfoType "DataValue" (bit 10) plus the historian bits of Part 4, 7.39
_INFO = 0x400
CALCULATED, INTERPOLATED, PARTIAL = 0x1, 0x2, 0x4
RAW = 0x0


@dataclass(frozen=True, slots=True)
class Sample:
    ts: datetime
    value: float
    good: bool


def _status(base: int, bits: int) -> ua.StatusCode:
    return ua.StatusCode(base | _INFO | bits)


def _dv(value: float | None, ts: datetime, bits: int, base: int = S.Good, vt: ua.VariantType = ua.VariantType.Double
        ) -> ua.DataValue:
    variant = ua.Variant(value, vt) if value is not None else ua.Variant(None, ua.VariantType.Null)
    return ua.DataValue(variant, StatusCode=_status(base, bits), SourceTimestamp=ts, ServerTimestamp=ts)


def _no_data(ts: datetime) -> ua.DataValue:
    return ua.DataValue(StatusCode=ua.StatusCode(S.BadNoData), SourceTimestamp=ts, ServerTimestamp=ts)


def interpolate(good: Sequence[Sample], at: datetime) -> tuple[float | None, bool]:
    """Value at `at` from the Good samples (sorted): (value, interpolated?). Sloped between the bounds; the last
    value held (stepped extrapolation) after the last sample; None before the first."""
    times = [s.ts for s in good]
    i = bisect.bisect_left(times, at)
    if i < len(good) and good[i].ts == at:
        return good[i].value, False
    if i == 0:
        return None, False
    before = good[i - 1]
    if i == len(good):
        return before.value, True
    after = good[i]
    span = (after.ts - before.ts).total_seconds()
    frac = (at - before.ts).total_seconds() / span if span else 0.0
    return before.value + (after.value - before.value) * frac, True


def _area(good: Sequence[Sample], start: datetime, end: datetime) -> tuple[float, float] | None:
    """Integral (value x seconds) of the sloped line through the Good samples over [start, end), and the
    seconds covered. None when no value can be computed at start."""
    v0, _ = interpolate(good, start)
    if v0 is None:
        first = next((s for s in good if start <= s.ts < end), None)
        if first is None:
            return None
        start, v0 = first.ts, first.value
    points = [(start, v0)] + [(s.ts, s.value) for s in good if start < s.ts < end]
    v1, _ = interpolate(good, end)
    points.append((end, v1 if v1 is not None else points[-1][1]))
    area = 0.0
    for (t0, a), (t1, b) in zip(points, points[1:], strict=False):
        area += (a + b) / 2 * (t1 - t0).total_seconds()
    return area, (end - start).total_seconds()


def _duration_good(samples: Sequence[Sample], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) during which the latest status (stepped) was Good."""
    times = [s.ts for s in samples]
    i = bisect.bisect_right(times, start) - 1
    good_now = samples[i].good if i >= 0 else False
    t = start
    total = 0.0
    for s in samples[i + 1:]:
        if s.ts >= end:
            break
        if good_now:
            total += (s.ts - t).total_seconds()
        t, good_now = s.ts, s.good
    if good_now:
        total += (end - t).total_seconds()
    return total


Aggregate = Callable[[Sequence[Sample], Sequence[Sample], datetime, datetime, int], ua.DataValue]


def _in(good: Sequence[Sample], start: datetime, end: datetime) -> list[Sample]:
    return [s for s in good if start <= s.ts < end]


def _count(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
    return _dv(len(_in(good, a, b)), a, CALCULATED | p, vt=ua.VariantType.Int32)


def _extreme(pick: Callable[..., Sample], actual_time: bool) -> Aggregate:
    def agg(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
        vals = _in(good, a, b)
        if not vals:
            return _no_data(a)
        best = pick(vals, key=lambda s: s.value)
        return _dv(best.value, best.ts if actual_time else a, (RAW if actual_time else CALCULATED) | p)

    return agg


def _range(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
    vals = _in(good, a, b)
    if not vals:
        return _no_data(a)
    return _dv(max(s.value for s in vals) - min(s.value for s in vals), a, CALCULATED | p)


def _average(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
    vals = _in(good, a, b)
    if not vals:
        return _no_data(a)
    return _dv(math.fsum(s.value for s in vals) / len(vals), a, CALCULATED | p)


def _time_average(total: bool) -> Aggregate:
    def agg(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
        res = _area(good, a, b)
        if res is None:
            return _no_data(a)
        area, seconds = res
        value = area if total else (area / seconds if seconds else None)
        return _dv(value, a, CALCULATED | p) if value is not None else _no_data(a)

    return agg


def _start_end(last: bool) -> Aggregate:
    def agg(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
        vals = _in(good, a, b)
        if not vals:
            return _no_data(a)
        s = vals[-1] if last else vals[0]
        return _dv(s.value, s.ts, RAW | p)

    return agg


def _delta(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
    vals = _in(good, a, b)
    if not vals:
        return _no_data(a)
    return _dv(vals[-1].value - vals[0].value, a, CALCULATED | p)


def _interpolative(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
    value, interpolated = interpolate(good, a)
    if value is None:
        return _no_data(a)
    return _dv(value, a, (INTERPOLATED if interpolated else RAW) | p)


def _duration(percent: bool) -> Aggregate:
    def agg(all_: Sequence[Sample], good: Sequence[Sample], a: datetime, b: datetime, p: int) -> ua.DataValue:
        seconds = (b - a).total_seconds()
        dur = _duration_good(all_, a, b)
        if percent:
            return _dv(100.0 * dur / seconds if seconds else 0.0, a, CALCULATED | p)
        return _dv(dur * 1000.0, a, CALCULATED | p)

    return agg


O = ua.ObjectIds
AGGREGATES: dict[int, tuple[str, Aggregate]] = {
    O.AggregateFunction_Interpolative: ("Interpolative", _interpolative),
    O.AggregateFunction_Average: ("Average", _average),
    O.AggregateFunction_TimeAverage: ("TimeAverage", _time_average(total=False)),
    O.AggregateFunction_Total: ("Total", _time_average(total=True)),
    O.AggregateFunction_Minimum: ("Minimum", _extreme(min, actual_time=False)),
    O.AggregateFunction_Maximum: ("Maximum", _extreme(max, actual_time=False)),
    O.AggregateFunction_MinimumActualTime: ("MinimumActualTime", _extreme(min, actual_time=True)),
    O.AggregateFunction_MaximumActualTime: ("MaximumActualTime", _extreme(max, actual_time=True)),
    O.AggregateFunction_Range: ("Range", _range),
    O.AggregateFunction_Count: ("Count", _count),
    O.AggregateFunction_Start: ("Start", _start_end(last=False)),
    O.AggregateFunction_End: ("End", _start_end(last=True)),
    O.AggregateFunction_Delta: ("Delta", _delta),
    O.AggregateFunction_DurationGood: ("DurationGood", _duration(percent=False)),
    O.AggregateFunction_PercentGood: ("PercentGood", _duration(percent=True)),
}


def intervals(start: datetime, end: datetime, interval_ms: float) -> list[tuple[datetime, datetime, bool]]:
    """[(interval start, interval end, partial?)] covering [start, end); interval 0 = one interval."""
    if end <= start:
        return []
    if interval_ms <= 0:
        return [(start, end, False)]
    step = timedelta(milliseconds=interval_ms)
    out = []
    t = start
    while t < end:
        nxt = t + step
        out.append((t, min(nxt, end), nxt > end))
        t = nxt
    return out


def compute(aggregate_id: int, samples: Sequence[Sample], start: datetime, end: datetime,
            interval_ms: float) -> list[ua.DataValue]:
    """One DataValue per interval. `samples` are every raw value (sorted by time) in [start, end) plus the
    bounding values just outside it, so interpolation at the edges works."""
    _, fn = AGGREGATES[aggregate_id]
    good = [s for s in samples if s.good]
    return [fn(samples, good, a, b, PARTIAL if partial else 0) for a, b, partial in intervals(start, end, interval_ms)]
