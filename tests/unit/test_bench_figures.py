"""The rules that turn benchmark samples into claims: a goal is met only where the margin exceeds the spread of the
runs, the event-loop lag's p99 over a window comes from the counters of two scrapes, the counting history
reader reads the OPC UA binary answer as asyncua encodes it, and paired windows (`--paired`) open together."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_to_binary

import bench.run as bench_run
from bench.history_counter import count_answer
from bench.results import Goal, Results
from bench.run import lag_p99
from bridge.runtime.loop_lag import LoopLag


def test_met_only_where_the_margin_exceeds_the_spread() -> None:
    goal = Goal("bridge", "<=", 0.5)
    assert goal.verdict([0.499]) == "1 run: not judged"  # one window is no evidence
    assert goal.verdict([0.30, 0.35, 0.40]) == "met"  # margin 0.15 > spread 0.10
    assert goal.verdict([0.45, 0.499, 0.55]) == "within spread"  # the 0.499 on a noisy machine
    assert goal.verdict([0.80, 0.85, 0.90]) == "not met"
    assert Goal("ratio", ">=", 0.9).verdict([0.97, 0.98]) == "met"
    assert Goal("bridge", "<=", 0).verdict([0.0, 0.0, 0.0]) == "met"  # equal counts: nothing to exceed
    assert Goal("bridge", "<=", 0).verdict([0.0, 1.0, 0.0]) == "within spread"  # one run of three was late


def test_summary_is_median_and_spread_of_the_same_run_ratios() -> None:
    res = Results()
    for bridge, base in ((2.0, 1.0), (3.0, 1.0), (10.0, 2.0)):
        res.add("s", "m", bridge, base, "us", Goal("ratio", "<=", 10))
    (row,) = res.summary()
    assert row["ratio"]["median"] == 3.0 and row["ratio"]["spread"] == 3.0  # ratios 2, 3, 5
    assert row["bridge"]["median"] == 3.0 and row["verdict"] == "met"
    assert "3 (2-5)" in res.markdown({"date": "d", "commit": "c", "dirty": False, "machine": "m", "repeat": 3})


def test_lag_p99_from_two_scrapes() -> None:
    lag = LoopLag()
    for ms in [1] * 980 + [30] * 15 + [300] * 5:  # 2 % over 20 ms, 0.5 % over 250 ms
        lag.observe(ms / 1000)
    after = lag.metrics()
    assert after["event_loop_ticks_total"] == 1000
    assert after["event_loop_lag_over_20ms_total"] == 20 and after["event_loop_lag_over_250ms_total"] == 5
    assert lag_p99({}, after) == 0.05  # 0.5 % beyond 50 ms: p99 <= 50 ms
    before = dict(after)
    for _ in range(100):
        lag.observe(0.6)
    assert lag_p99(before, lag.metrics()) == 1.0  # only the window counts


def _history_answer(pages: list[tuple[int, bytes | None]]) -> Buffer:
    """A HistoryReadResponse as a server sends it (type id first), encoded by asyncua."""
    results = [
        ua.HistoryReadResult(
            StatusCode=ua.StatusCode(ua.StatusCodes.Good),
            ContinuationPoint=point,
            HistoryData=ua.HistoryData(DataValues=[ua.DataValue(ua.Variant(float(i))) for i in range(n)]),
        )
        for n, point in pages
    ]
    return Buffer(struct_to_binary(ua.HistoryReadResponse(Results=results)))  # its TypeId field leads


def test_the_counting_history_reader_counts_what_a_full_decode_finds() -> None:
    pages = [(1000, b"cp-1"), (0, None), (3, b"\x00" * 16)]
    assert count_answer(_history_answer(pages)) == pages


def test_the_counting_history_reader_refuses_what_it_cannot_count() -> None:
    bad = ua.HistoryReadResponse(
        Results=[ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown))]
    )
    with pytest.raises(ValueError, match="BadNodeIdUnknown"):
        count_answer(Buffer(struct_to_binary(bad)))
    events = ua.HistoryReadResponse(
        Results=[
            ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.Good), HistoryData=ua.HistoryEvent(Events=[]))
        ]
    )
    with pytest.raises(ValueError, match="not HistoryData"):
        count_answer(Buffer(struct_to_binary(events)))


def _fake_windows(monkeypatch: pytest.MonkeyPatch, opened: dict[str, float]) -> None:
    """`windowed` as a client that subscribes, waits for its go file and then opens its window (the real clients
    poll the go file every 0.1 s); the window's start time is recorded per endpoint."""

    def windowed(cmd: list[str], pid: int | None, on_start: Any, on_stop: Any, on_subscribed: Any) -> dict[str, Any]:
        go = Path(cmd[cmd.index("--go-file") + 1])
        endpoint = cmd[cmd.index("--endpoint") + 1]
        on_subscribed()
        deadline = time.monotonic() + 5
        while not go.exists():
            assert time.monotonic() < deadline, "the go file never came"
            time.sleep(0.01)
        opened[endpoint] = time.monotonic()
        on_start()
        on_stop()
        return {"per_second": 100.0, "cpu": 0.01}

    monkeypatch.setattr(bench_run, "windowed", windowed)


def test_paired_windows_open_together_after_the_slow_side_settled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: dict[str, float] = {}
    _fake_windows(monkeypatch, opened)
    settled: list[float] = []

    def slow_to_settle() -> None:  # the bridge taking on its pushed tags; without the barrier the baseline's
        time.sleep(0.3)  # window would open meanwhile
        settled.append(time.monotonic())

    sides = [bench_run.Side("bridge", 1, settled=slow_to_settle), bench_run.Side("baseline", 2)]
    figures = bench_run._measure_paired("asyncua", tmp_path / "tags.json", 1.0, sides)
    assert [f["cpu_per_notif_us"] for f in figures] == [100.0, 100.0]
    assert set(opened) == {"bridge", "baseline"}
    assert min(opened.values()) >= settled[0]  # the quick side waited for the bridge to settle


def test_a_paired_side_that_fails_releases_the_other_and_its_error_is_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: dict[str, float] = {}
    _fake_windows(monkeypatch, opened)

    def never_settles() -> None:
        raise RuntimeError("the push did not take on the tags")

    sides = [bench_run.Side("bridge", 1, settled=never_settles), bench_run.Side("baseline", 2)]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not take on"):
        bench_run._measure_paired("asyncua", tmp_path / "tags.json", 1.0, sides)
    assert time.monotonic() - started < 60  # released at once, not after the barrier's 600 s
