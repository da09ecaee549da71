"""Part 13 aggregates checked against values computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua

from bridge.opcua.aggregates import CALCULATED, INTERPOLATED, PARTIAL, Sample, compute, intervals

O = ua.ObjectIds
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# a bound before the range, values at 0, 10, 20, 30 (the one at 20 bad), a bound after
SAMPLES = [Sample(t(-10), 0.0, True), Sample(t(0), 10.0, True), Sample(t(10), 20.0, True),
           Sample(t(20), 999.0, False), Sample(t(30), 40.0, True), Sample(t(50), 60.0, True)]


def one(agg: int, start: float = 0, end: float = 40, interval_ms: float = 0) -> ua.DataValue:
    (dv,) = compute(agg, SAMPLES, t(start), t(end), interval_ms)
    return dv


def bits(dv: ua.DataValue) -> int:
    return dv.StatusCode.value & 0x1F


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        (O.AggregateFunction_Count, 3),
        (O.AggregateFunction_Average, (10 + 20 + 40) / 3),
        (O.AggregateFunction_Minimum, 10.0),
        (O.AggregateFunction_Maximum, 40.0),
        (O.AggregateFunction_Range, 30.0),
        (O.AggregateFunction_Start, 10.0),
        (O.AggregateFunction_End, 40.0),
        (O.AggregateFunction_Delta, 30.0),
    ],
)
def test_simple_aggregates(agg: int, expected: float) -> None:
    dv = one(agg)
    assert dv.StatusCode.is_good()
    assert dv.Value.Value == pytest.approx(expected)


def test_time_average_and_total_use_sloped_line_through_good_values() -> None:
    # good points: (0,10) (10,20) (30,40) and the bound (50,60): value at 40 interpolates to 50
    # area 0..10 = 150, 10..30 = 600, 30..40 = 450 -> 1200 over 40 s
    assert one(O.AggregateFunction_Total).Value.Value == pytest.approx(1200.0)
    tavg = one(O.AggregateFunction_TimeAverage)
    assert tavg.Value.Value == pytest.approx(30.0)
    assert bits(tavg) & CALCULATED


def test_actual_time_aggregates_carry_the_raw_timestamp() -> None:
    assert one(O.AggregateFunction_MaximumActualTime).SourceTimestamp == t(30)
    assert one(O.AggregateFunction_MinimumActualTime).SourceTimestamp == t(0)
    assert one(O.AggregateFunction_Maximum).SourceTimestamp == t(0)


def test_interpolative_at_interval_starts() -> None:
    dvs = compute(O.AggregateFunction_Interpolative, SAMPLES, t(0), t(40), 5000)
    assert [dv.Value.Value for dv in dvs] == pytest.approx([10, 15, 20, 25, 30, 35, 40, 45])
    assert bits(dvs[0]) == 0 and bits(dvs[1]) & INTERPOLATED


def test_duration_and_percent_good_step_with_status() -> None:
    # good 0..20, bad 20..30, good 30..40 -> 30 s good of 40
    assert one(O.AggregateFunction_DurationGood).Value.Value == pytest.approx(30_000.0)
    assert one(O.AggregateFunction_PercentGood).Value.Value == pytest.approx(75.0)


def test_empty_interval_is_bad_no_data_but_count_is_zero() -> None:
    dvs = compute(O.AggregateFunction_Average, SAMPLES, t(31), t(45), 5000)
    assert all(dv.StatusCode.value == ua.StatusCodes.BadNoData for dv in dvs)
    (count,) = compute(O.AggregateFunction_Count, SAMPLES, t(31), t(45), 0)
    assert count.Value.Value == 0


def test_last_interval_partial() -> None:
    dvs = compute(O.AggregateFunction_Count, SAMPLES, t(0), t(25), 10_000)
    assert [dv.Value.Value for dv in dvs] == [1, 1, 0]
    assert [bool(bits(dv) & PARTIAL) for dv in dvs] == [False, False, True]


def test_intervals_cover_range_exactly() -> None:
    iv = intervals(t(0), t(25), 10_000)
    assert [(a, b) for a, b, _ in iv] == [(t(0), t(10)), (t(10), t(20)), (t(20), t(25))]
    assert intervals(t(0), t(25), 0) == [(t(0), t(25), False)]
