"""The cap on WinCC requests in flight, with writes served before reads."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Literal

__all__ = ["Kind", "PriorityLimiter"]

Kind = Literal["read", "write"]


class PriorityLimiter:
    """At most `limit` holders at once; when a slot frees, a waiting write gets it before any waiting read.

    Writes and acknowledges are what an operator waits for, while a poll cycle may queue dozens of batches: with
    one FIFO semaphore a write would wait behind all of them. A freed slot is handed straight to the next waiter
    (never put back for anyone to grab), so the order is exactly: writes first, then reads, each first come first
    served. A waiter cancelled while queued leaves the queue; one cancelled just after being handed a slot passes
    it on, so no slot ever leaks.
    """

    __slots__ = ("_free", "_queues")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._free = limit
        self._queues: dict[Kind, deque[asyncio.Future[None]]] = {"write": deque(), "read": deque()}

    @property
    def waiting(self) -> int:
        return sum(1 for q in self._queues.values() for f in q if not f.done())

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, kind: Kind) -> None:
        if self._free > 0:  # free slots mean nobody waits: release() hands slots to waiters first
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues[kind]
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot in the same instant we were cancelled: pass it on
            else:
                try:
                    queue.remove(fut)
                except ValueError:
                    pass  # release() already dropped it as done
            raise

    def release(self) -> None:
        for queue in self._queues.values():  # "write" first
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self._free += 1

    def slot(self, kind: Kind) -> _Slot:
        return _Slot(self, kind)


class _Slot:
    __slots__ = ("_kind", "_limiter")

    def __init__(self, limiter: PriorityLimiter, kind: Kind) -> None:
        self._limiter = limiter
        self._kind = kind

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._kind)

    async def __aexit__(self, *exc: object) -> None:
        self._limiter.release()
