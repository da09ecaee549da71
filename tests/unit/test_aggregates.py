"""Part 13 aggregates checked against values and status codes computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua

from bridge.opcua.history.aggregates import (
    AGGREGATES,
    CALCULATED,
    INTERPOLATED,
    MULTI_VALUE,
    PARTIAL,
    RAW,
    AggregateSettings,
    Sample,
    at_times,
    compute,
    intervals,
)

O = ua.ObjectIds
S = ua.StatusCodes
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GOOD, UNCERTAIN, BAD, NO_DATA = S.Good, S.UncertainDataSubNormal, S.Bad, S.BadNoData


def t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# a bound before the range, values at 0, 10, 20, 30 (the one at 20 bad), a bound after
SAMPLES = [
    Sample(t(-10), 0.0, True),
    Sample(t(0), 10.0, True),
    Sample(t(10), 20.0, True),
    Sample(t(20), 999.0, False),
    Sample(t(30), 40.0, True),
    Sample(t(50), 60.0, True),
]


def one(
    agg: int,
    start: float = 0,
    end: float = 40,
    interval_ms: float = 0,
    samples=SAMPLES,
    settings: AggregateSettings | None = None,
) -> ua.DataValue:
    (dv,) = compute(agg, samples, t(start), t(end), interval_ms, settings)
    return dv


def bits(dv: ua.DataValue) -> int:
    return dv.StatusCode.value & 0x1F


def severity(dv: ua.DataValue) -> int:
    """The StatusCode without InfoType and historian bits."""
    return dv.StatusCode.value & 0xFFFF0000


@pytest.mark.parametrize(
    ("agg", "expected", "status"),
    [
        # 3 of the 4 raw values are Good: PercentValues with PercentDataGood=100 -> Uncertain (5.4.3.2.1)
        (O.AggregateFunction_Count, 3, UNCERTAIN),
        (O.AggregateFunction_Average, (10 + 20 + 40) / 3, UNCERTAIN),
        # Bad values exist in the interval -> Uncertain (5.4.3.10, .11, .14)
        (O.AggregateFunction_Minimum, 10.0, UNCERTAIN),
        (O.AggregateFunction_Maximum, 40.0, UNCERTAIN),
        (O.AggregateFunction_Range, 30.0, UNCERTAIN),
        # the first / last raw values are Good and returned with their own status (5.4.3.25, .26)
        (O.AggregateFunction_Start, 10.0, GOOD),
        (O.AggregateFunction_End, 40.0, GOOD),
        # no Bad value was skipped looking for the first or last Good value (5.4.3.27)
        (O.AggregateFunction_Delta, 30.0, GOOD),
    ],
)
def test_simple_aggregates(agg: int, expected: float, status: int) -> None:
    dv = one(agg)
    assert severity(dv) == status
    assert dv.Value.Value == pytest.approx(expected)


def test_all_good_interval_is_good() -> None:
    # [30, 50): only the Good value at 30
    for agg in AGGREGATES:
        dv = one(agg, 30, 50)
        assert severity(dv) == GOOD, AGGREGATES[agg][0]


def test_time_average_and_total_use_sloped_line_through_good_values() -> None:
    # good points: (0,10) (10,20) (30,40) and the bound (50,60): value at 40 interpolates to 50
    # area 0..10 = 150, 10..30 = 600, 30..40 = 450 -> 1200 over 40 s; the Bad value at 20 was skipped: Uncertain
    total = one(O.AggregateFunction_Total)
    assert total.Value.Value == pytest.approx(1200.0)
    tavg = one(O.AggregateFunction_TimeAverage)
    assert tavg.Value.Value == pytest.approx(30.0)
    assert bits(tavg) == CALCULATED and severity(tavg) == UNCERTAIN
    # [30, 40) has no Bad value in it or around it: Good
    assert severity(one(O.AggregateFunction_TimeAverage, 30, 40)) == GOOD
    # no value after the interval: the end is extrapolated (stepped) and the result Uncertain
    late = one(O.AggregateFunction_TimeAverage, 50, 60)
    assert late.Value.Value == pytest.approx(60.0) and severity(late) == UNCERTAIN


def test_time_average_without_start_bound_covers_the_rest_of_the_interval() -> None:
    # no value before 0 here: the interval [-10, 10) is computed from the first value on, Partial
    dv = one(O.AggregateFunction_TimeAverage, -10, 10, samples=SAMPLES[1:])
    assert dv.Value.Value == pytest.approx(15.0)
    assert bits(dv) == CALCULATED | PARTIAL and severity(dv) == GOOD


def test_actual_time_aggregates_carry_the_raw_timestamp() -> None:
    assert one(O.AggregateFunction_MaximumActualTime).SourceTimestamp == t(30)
    assert one(O.AggregateFunction_MinimumActualTime).SourceTimestamp == t(0)
    assert one(O.AggregateFunction_Maximum).SourceTimestamp == t(0)
    # Bad values in the interval: Uncertain and Calculated (5.4.3.12); a clean interval: Good, Raw
    assert bits(one(O.AggregateFunction_MinimumActualTime)) == CALCULATED
    clean = one(O.AggregateFunction_MinimumActualTime, 30, 50)
    assert bits(clean) == RAW and severity(clean) == GOOD


def test_minimum_bits() -> None:
    # the minimum sits on the interval start: Raw; elsewhere: Calculated; twice the same value: MultipleValues
    assert bits(one(O.AggregateFunction_Minimum, 30, 50)) == RAW
    assert bits(one(O.AggregateFunction_Maximum, 0, 20)) == CALCULATED
    twice = [Sample(t(0), 5.0, True), Sample(t(1), 3.0, True), Sample(t(2), 3.0, True), Sample(t(5), 9.0, True)]
    dv = one(O.AggregateFunction_MinimumActualTime, 0, 5, samples=twice)
    assert dv.SourceTimestamp == t(1) and bits(dv) == RAW | MULTI_VALUE  # the oldest of the two


def test_interpolative_at_interval_starts() -> None:
    dvs = compute(O.AggregateFunction_Interpolative, SAMPLES, t(0), t(38), 5000)
    assert [dv.Value.Value for dv in dvs] == pytest.approx([10, 15, 20, 25, 30, 35, 40, 45])
    # 15, 20 and 25 interpolate across the Bad value at 20: Uncertain (5.4.3.4)
    assert [severity(dv) for dv in dvs] == [GOOD, GOOD, GOOD, UNCERTAIN, UNCERTAIN, UNCERTAIN, GOOD, GOOD]
    # Raw where a value sits on the start, Interpolated elsewhere, never Partial (Table 15)
    assert [bits(dv) for dv in dvs] == [
        RAW,
        INTERPOLATED,
        RAW,
        INTERPOLATED,
        INTERPOLATED,
        INTERPOLATED,
        RAW,
        INTERPOLATED,
    ]


def test_interpolative_before_and_after_the_data() -> None:
    assert one(O.AggregateFunction_Interpolative, -20, -15).StatusCode.value == NO_DATA
    stepped = one(O.AggregateFunction_Interpolative, 60, 65)
    assert stepped.Value.Value == 60.0 and severity(stepped) == UNCERTAIN
    # sloped extrapolation continues the line through the last two Good values (30,40) and (50,60)
    sloped = one(O.AggregateFunction_Interpolative, 60, 65, settings=AggregateSettings(use_sloped_extrapolation=True))
    assert sloped.Value.Value == pytest.approx(70.0) and severity(sloped) == UNCERTAIN


def test_duration_and_percent_good_step_with_status() -> None:
    # good 0..20, bad 20..30, good 30..40 -> 30 s good of 40; always Good, Calculated
    dur = one(O.AggregateFunction_DurationGood)
    assert dur.Value.Value == pytest.approx(30_000.0) and severity(dur) == GOOD and bits(dur) == CALCULATED
    assert one(O.AggregateFunction_PercentGood).Value.Value == pytest.approx(75.0)
    # before the first archived value: Bad_NoData
    assert one(O.AggregateFunction_DurationGood, -30, -20).StatusCode.value == NO_DATA


def test_empty_interval_is_bad_no_data_but_count_is_zero() -> None:
    dvs = compute(O.AggregateFunction_Average, SAMPLES, t(31), t(45), 5000)
    assert all(dv.StatusCode.value == NO_DATA for dv in dvs)
    count = one(O.AggregateFunction_Count, 31, 45)
    assert count.Value.Value == 0 and severity(count) == GOOD
    # after the last archived value there is no data to count
    assert one(O.AggregateFunction_Count, 51, 60).StatusCode.value == NO_DATA


def test_last_interval_partial() -> None:
    dvs = compute(O.AggregateFunction_Count, SAMPLES, t(0), t(25), 10_000)
    assert [dv.Value.Value for dv in dvs] == [1, 1, 0]
    assert [bool(bits(dv) & PARTIAL) for dv in dvs] == [False, False, True]
    # [20, 25) holds only the Bad value: 100 % bad >= PercentDataBad -> Bad
    assert [severity(dv) for dv in dvs] == [GOOD, GOOD, BAD]


def test_start_end_delta_with_bad_values() -> None:
    start = one(O.AggregateFunction_Start, 20, 30)
    assert start.Value.Value == 999.0 and severity(start) == BAD and start.SourceTimestamp == t(20)
    # [10, 25): the last value is Bad, skipped looking for the last Good one
    delta = one(O.AggregateFunction_Delta, 10, 25)
    assert delta.Value.Value == 0.0 and severity(delta) == UNCERTAIN
    assert one(O.AggregateFunction_Delta, 20, 30).StatusCode.value == NO_DATA


def test_aggregate_configuration() -> None:
    # [0, 40): 3 of 4 values usable (75 %), 1 Bad (25 %)
    lenient = AggregateSettings(percent_data_good=75)
    assert severity(one(O.AggregateFunction_Average, settings=lenient)) == GOOD
    strict = AggregateSettings(percent_data_bad=25)
    bad = one(O.AggregateFunction_Average, settings=strict)
    assert severity(bad) == BAD and bad.Value.Value is None
    # an Uncertain value: skipped like a Bad one by default, used (but the result Uncertain) when not
    samples = [Sample(t(0), 10.0, True), Sample(t(10), 30.0, False, uncertain=True), Sample(t(20), 50.0, True)]
    as_bad = one(O.AggregateFunction_Average, 0, 20, samples=samples)
    assert as_bad.Value.Value == 10.0 and severity(as_bad) == UNCERTAIN
    used = one(
        O.AggregateFunction_Average, 0, 20, samples=samples, settings=AggregateSettings(treat_uncertain_as_bad=False)
    )
    assert used.Value.Value == 20.0 and severity(used) == UNCERTAIN
    clean = one(
        O.AggregateFunction_Average,
        0,
        20,
        samples=[samples[0], samples[2]],
        settings=AggregateSettings(treat_uncertain_as_bad=False),
    )
    assert severity(clean) == GOOD


def test_intervals_cover_range_exactly() -> None:
    iv = intervals(t(0), t(25), 10_000)
    assert [(a, b) for a, b, _ in iv] == [(t(0), t(10)), (t(10), t(20)), (t(20), t(25))]
    assert intervals(t(0), t(25), 0) == [(t(0), t(25), False)]
    # backwards: the intervals start at StartTime, so the short one is at EndTime (Part 13 5.4.2.2)
    assert intervals(t(25), t(0), 10_000) == [(t(25), t(15), False), (t(15), t(5), False), (t(5), t(0), True)]


def test_reverse_intervals_include_their_start_and_run_backwards() -> None:
    # (25, 40] holds 30; (10, 25] holds only the Bad 20; (0, 10] holds 10 (its start) but not 0 (the EndTime)
    counts = compute(O.AggregateFunction_Count, SAMPLES, t(40), t(0), 15_000)
    assert [dv.SourceTimestamp for dv in counts] == [t(40), t(25), t(10)]
    assert [dv.Value.Value for dv in counts] == [1, 0, 1]
    assert [severity(dv) for dv in counts] == [GOOD, BAD, GOOD]
    assert [bool(bits(dv) & PARTIAL) for dv in counts] == [False, False, True]
    averages = compute(O.AggregateFunction_Average, SAMPLES, t(40), t(0), 15_000)
    assert [dv.Value.Value for dv in averages] == [40.0, None, 20.0]
    # Interpolative at each interval's start: 40 between (30,40) and (50,60); 25 across the Bad value; 10 raw
    interp = compute(O.AggregateFunction_Interpolative, SAMPLES, t(40), t(0), 15_000)
    assert [dv.Value.Value for dv in interp] == pytest.approx([50.0, 35.0, 20.0])
    assert [severity(dv) for dv in interp] == [GOOD, UNCERTAIN, GOOD]


def test_at_times_simple_and_interpolated_bounds() -> None:
    times = [t(15), t(20), t(-20), t(60), t(5)]
    simple = at_times(SAMPLES, times, simple=True)
    # 15: the raw value after is Bad -> the one before is held, Uncertain (Part 13 3.1.9)
    assert simple[0].Value.Value == 20.0 and severity(simple[0]) == UNCERTAIN and bits(simple[0]) == INTERPOLATED
    # 20: the raw (Bad) value at that time is returned as it is
    assert simple[1].Value.Value == 999.0 and severity(simple[1]) == BAD and bits(simple[1]) == RAW
    assert simple[2].StatusCode.value == NO_DATA
    assert simple[3].Value.Value == 60.0 and severity(simple[3]) == UNCERTAIN
    assert simple[4].Value.Value == pytest.approx(15.0) and severity(simple[4]) == GOOD
    inter = at_times(SAMPLES, times, simple=False)
    # interpolated bounds skip the Bad value: 25 and 30, both Uncertain (3.1.8)
    assert [dv.Value.Value for dv in inter[:2]] == pytest.approx([25.0, 30.0])
    assert [severity(dv) for dv in inter[:2]] == [UNCERTAIN, UNCERTAIN]


# ---- the work is O(samples + intervals) -----------------------------------------------------------------------
def counting_samples(n: int) -> tuple[list[Sample], list[int]]:
    """A day of 1 Hz samples (every 7th Bad) whose every attribute read is counted."""
    reads = [0]

    class Counted(Sample):
        __slots__ = ()

        def __getattribute__(self, name: str):  # noqa: ANN204
            reads[0] += 1
            return object.__getattribute__(self, name)

    return [Counted(t(i), float(i % 100), i % 7 != 0) for i in range(n)], reads


N, K = 86_400, 1_440  # one day of 1 Hz values, one-minute intervals


@pytest.mark.parametrize("agg", list(AGGREGATES), ids=[name for name, _ in AGGREGATES.values()])
def test_compute_touches_each_sample_a_bounded_number_of_times(agg: int) -> None:
    samples, reads = counting_samples(N)
    dvs = compute(agg, samples, t(0), t(N), 60_000)
    assert len(dvs) == K
    # a scan per interval would read ~N x K = 124 million attributes; one pass reads about ten per sample
    assert reads[0] <= 15 * (N + K), reads[0]


def test_reverse_compute_is_linear_too() -> None:
    samples, reads = counting_samples(N)
    dvs = compute(O.AggregateFunction_TimeAverage, samples, t(N), t(0), 60_000)
    assert len(dvs) == K and dvs[0].SourceTimestamp == t(N)
    assert reads[0] <= 15 * (N + K), reads[0]


def test_at_times_is_linear() -> None:
    samples, reads = counting_samples(N)
    times = [t(i * 60 + 0.5) for i in range(K)]
    dvs = at_times(samples, times, simple=False)
    assert len(dvs) == K
    assert reads[0] <= 10 * (N + K), reads[0]
