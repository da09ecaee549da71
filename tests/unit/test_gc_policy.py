"""bridge/runtime/gc_policy.py: the collector settings the bridge runs with, and when it freezes or collects."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bridge.runtime.gc_policy import (
    COLLECT_FROM_ITEMS,
    FREEZE_FROM_TAGS,
    YOUNG_THRESHOLDS,
    collect_dropped,
    freeze_long_lived,
    paused,
    young_generation,
)


class Node:
    """A stand-in for an object in a reference cycle (asyncua's subscription and its item service)."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Only the calls under test may collect (an automatic pass could free the cycle by itself)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_young_generation_is_larger_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with young_generation():
        assert gc.get_threshold() == (*YOUNG_THRESHOLDS, before[2])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), young_generation():
        raise RuntimeError("the bridge failed")
    assert gc.get_threshold() == before  # restored on the way out of an error too


def test_freeze_only_from_many_tags() -> None:
    start = gc.get_freeze_count()
    try:
        freeze_long_lived("test", FREEZE_FROM_TAGS - 1)
        assert gc.get_freeze_count() == start
        kept = [Node() for _ in range(100)]
        freeze_long_lived("test", FREEZE_FROM_TAGS)
        assert gc.get_freeze_count() >= start + len(kept)
    finally:
        gc.unfreeze()


def test_dropped_items_are_collected_once_there_are_enough(no_automatic_gc: None) -> None:
    gone = cycle()
    assert not collect_dropped("monitored items deleted", COLLECT_FROM_ITEMS - 1)
    assert gone() is not None  # too few items gone: no full pass for them
    assert collect_dropped("monitored items deleted", COLLECT_FROM_ITEMS)
    assert gone() is None


def test_paused_stops_collection_and_restores_it_also_when_nested() -> None:
    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner one leaves it as the outer one set it
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()  # off before: off after
    finally:
        gc.enable()
