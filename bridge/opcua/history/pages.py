"""An archive read that outlives one HistoryRead call: a forward raw read resumed by a continuation point goes on
with the same REST page stream instead of asking WinCC again from the last timestamp.

Asking again cost a second REST page per answer (the first page ended exactly at the value limit, so one more
value had to be fetched to know whether there is more, and the next call started over from there). The stream also
asks for the following page as soon as one is handed out, so WinCC prepares it while this process encodes the
answer (the overlap that matters on a machine whose other core runs WinCC or the client).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bridge.wincc.models import ArchiveValue

__all__ = ["PageStream"]


class PageStream:
    """Pages of one archive read, one page fetched ahead; `put_back` keeps the unread rest of a page."""

    def __init__(self, pages: AsyncIterator[list[ArchiveValue]]) -> None:
        self._pages = pages
        self._ahead: asyncio.Task[list[ArchiveValue] | None] | None = None
        self._rest: list[ArchiveValue] = []
        self.done = False

    async def _next(self) -> list[ArchiveValue] | None:
        try:
            return await anext(self._pages)
        except StopAsyncIteration:
            return None

    def _fetch_ahead(self) -> None:
        task = asyncio.ensure_future(self._next())
        task.add_done_callback(_retrieve)  # a read abandoned with its cursor must not log "never retrieved"
        self._ahead = task

    async def page(self) -> list[ArchiveValue] | None:
        """The next values in time order (the rest of a page put back first); None at the end of the read."""
        if self._rest:
            rest, self._rest = self._rest, []
            return rest
        if self.done:
            return None
        if self._ahead is None:
            self._fetch_ahead()
        assert self._ahead is not None
        task, self._ahead = self._ahead, None
        page = await task
        if page is None:
            self.done = True
            return None
        self._fetch_ahead()
        return page

    def put_back(self, rest: list[ArchiveValue]) -> None:
        self._rest = rest

    async def aclose(self) -> None:
        self.done = True
        if self._ahead is not None:
            self._ahead.cancel()
            with contextlib.suppress(BaseException):
                await self._ahead
            self._ahead = None
        with contextlib.suppress(Exception):
            await self._pages.aclose()  # type: ignore[attr-defined]


def _retrieve(task: asyncio.Task[list[ArchiveValue] | None]) -> None:
    if not task.cancelled():
        task.exception()
