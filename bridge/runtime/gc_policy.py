"""When the garbage collector may skip the bridge's long-lived objects.

A bridge for 100,000 tags holds millions of objects that live as long as their tag: the address space, the sync
engine's per-tag records, the last answer of each tag. CPython's full collections walk all of them, and at that
size one pass held the event loop for seconds (asyncua clients drop a server that does not answer for 1 s).
`gc.freeze()` moves every object alive at that moment out of the collector's view. It is called where the bulk of
the long-lived objects has just been made (the address space built, every tag polled once). Reference counting
still frees frozen objects; only reference cycles among them that die later would stay, which is why freezing
happens at these few moments and not at random.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["FREEZE_FROM_TAGS", "freeze_long_lived"]

log = logging.getLogger(__name__)


FREEZE_FROM_TAGS = 5000  # below this many tags a full collection is quick: nothing is frozen


def freeze_long_lived(what: str, tags: int) -> None:
    """Freeze what is alive now, if `tags` tags' worth of long-lived objects was just made (see above)."""
    if tags < FREEZE_FROM_TAGS:
        return
    before = gc.get_freeze_count()
    gc.freeze()
    log.debug(
        "%s of %d tags: %d objects taken out of the garbage collector's passes (%d in all)",
        what,
        tags,
        gc.get_freeze_count() - before,
        gc.get_freeze_count(),
    )
