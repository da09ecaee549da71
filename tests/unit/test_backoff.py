"""The one backoff policy: exponential steps, jittered both ways, capped; a loop's state resets on success."""

from __future__ import annotations

from bridge.runtime.backoff import JITTER, Backoff, backoff_delay


def test_steps_double_and_are_capped() -> None:
    no_jitter = lambda lo, hi: 1.0  # noqa: E731 - the factor in the middle of the jitter range
    assert [backoff_delay(n, 0.5, 3.0, uniform=no_jitter) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_spreads_both_ways_within_bounds() -> None:
    seen = [backoff_delay(3, 1.0, 100.0) for _ in range(200)]
    assert all(4 * (1 - JITTER) <= s <= 4 * (1 + JITTER) for s in seen)
    assert min(seen) < 4 < max(seen)  # 200 draws from +-50 %: both sides of the step


def test_loop_state_grows_and_resets() -> None:
    backoff = Backoff(base_s=1.0, cap_s=10.0, uniform=lambda lo, hi: 1.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    backoff.reset()
    assert backoff.next() == 1.0
