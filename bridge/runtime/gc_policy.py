"""When the garbage collector may skip the bridge's long-lived objects.

A bridge for 100,000 tags holds millions of objects that live as long as their tag: the address space, the sync
engine's per-tag records, the last answer of each tag. CPython's full collections walk all of them, and at that
size one pass held the event loop for seconds (asyncua clients drop a server that does not answer for 1 s).
`gc.freeze()` moves every object alive at that moment out of the collector's view. It is called where the bulk of
the long-lived objects has just been made (the address space built, every tag polled once, monitored items
created in bulk by a client). Reference counting still frees frozen objects; only reference cycles among them that
die later would stay, which is why freezing happens at these few moments and not at random.

What a client leaves behind when it goes is the other side of it: its subscriptions and monitored items hold
reference cycles (asyncua's subscription and its item service point at each other), and they lived long enough to
be in the old generation, which with the larger young generation below is examined rarely. A churn of clients
each subscribing 1,000 tags left +4-6 MiB per 50 clients uncollected (+1 MiB with CPython's defaults). So once
`COLLECT_FROM_ITEMS` monitored items were deleted, one full collection frees them (`collect_dropped`); with the
long-lived objects frozen it walks only what is not.

The young generation is made larger too (`young_generation`). A poll cycle at 100,000 tags makes tens of
thousands of short-lived containers a second (requests, answers, notifications); with CPython's default threshold
(700) they were examined ~90 times a second, and whatever lived for a cycle (a batch's answer is kept until the
next) was promoted to the old generation, whose full passes then walked every value changed since the last freeze:
profiled at 100,000 tags, 1 % changing a second, the collector was a third of the bridge's CPU, with pauses of
0.25-0.55 s. With a young generation of 20,000, what a cycle makes dies before it is examined.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "COLLECT_FROM_ITEMS",
    "FREEZE_FROM_TAGS",
    "YOUNG_THRESHOLDS",
    "collect_dropped",
    "freeze_long_lived",
    "paused",
    "young_generation",
]

log = logging.getLogger(__name__)


FREEZE_FROM_TAGS = 5000  # below this many tags a full collection is quick: nothing is frozen
COLLECT_FROM_ITEMS = 1000  # monitored items deleted (clients gone) before their garbage is collected at once
# collections of the young generation every 20,000 new containers (default 700), of the middle one every 20 of
# those (default 10); the old generation's rule is CPython's
YOUNG_THRESHOLDS = (20_000, 20)


@contextmanager
def young_generation() -> Iterator[None]:
    """Run the bridge with the larger young generation (see above); the process's thresholds come back after."""
    before = gc.get_threshold()
    gc.set_threshold(*YOUNG_THRESHOLDS, before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def paused() -> Iterator[None]:
    """No collection while the model is made (a browse's tags, the address space, the sync engine's records):
    millions of long-lived objects and no cycles among them, so every pass they trigger walks all that was made so
    far for nothing. Measured at 100,000 tags: one such pass held the event loop 1.2 s in the middle of a browse
    (a re-browse runs while clients are connected). The collector is as it was afterwards (nesting is safe)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_long_lived(what: str, tags: int) -> None:
    """Freeze what is alive now, if `tags` tags' worth of long-lived objects was just made (see above)."""
    if tags < FREEZE_FROM_TAGS:
        return
    if not log.isEnabledFor(logging.DEBUG):
        gc.freeze()  # O(1); counting the frozen objects walks them all (0.1-0.3 s at 100,000 tags)
        return
    before = gc.get_freeze_count()
    gc.freeze()
    after = gc.get_freeze_count()
    log.debug(
        "%s of %d tags: %d objects taken out of the garbage collector's passes (%d in all)",
        what,
        tags,
        after - before,
        after,
    )


def collect_dropped(what: str, items: int) -> bool:
    """One full collection, if `items` monitored items were deleted since the last one (see above); whether it ran."""
    if items < COLLECT_FROM_ITEMS:
        return False
    started = time.perf_counter()
    found = gc.collect()
    log.debug(
        "%d %s: %d unreachable objects collected in %.1f ms", items, what, found, (time.perf_counter() - started) * 1e3
    )
    return True
