"""Server/ServiceLevel from the sources' reachability (Part 5 sub-ranges: 1 NoData, 2..199 Degraded, 200.. Healthy)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.opcua.model.service_level import service_level


def test_levels() -> None:
    assert service_level([True]) == 255
    assert service_level([False]) == 1
    assert service_level([]) == 1
    assert service_level([True, False]) == 100
    assert service_level([True] * 9 + [False]) == 179
    assert service_level([True] + [False] * 9) == 21


@given(st.lists(st.booleans(), min_size=1, max_size=50))
def test_healthy_only_when_every_source_answers_and_more_sources_up_is_never_lower(reachable: list[bool]) -> None:
    level = service_level(reachable)
    assert 1 <= level <= 255
    assert (level >= 200) == all(reachable)
    assert (level == 1) == (not any(reachable))
    if not all(reachable):
        better = list(reachable)
        better[better.index(False)] = True
        assert service_level(better) > level
