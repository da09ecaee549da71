"""Raw HistoryRead (ReadRawModifiedDetails): the time domain, bounds, reverse order and continuation points as the
docstring of history/service.py describes them. Forward reads stream the archive (a continuation goes on with the
same stream); reverse reads walk back in windows sized by the data density."""

from __future__ import annotations

import sys
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from asyncua import ua

from bridge.opcua._asyncua import InternalSession
from bridge.opcua.history.archive import Archive, not_found, result, utc
from bridge.opcua.history.budget import out_of_budget
from bridge.opcua.history.continuation import ContinuationPoints
from bridge.opcua.history.encode import data_value, raw_result
from bridge.opcua.history.pages import PageStream
from bridge.wincc.models import ArchiveValue, TagInfo

__all__ = ["RawReads"]

S = ua.StatusCodes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # how far back an open reverse read walks
_FIRST_WINDOW = timedelta(minutes=1)  # the first reverse window, before the data density is known
_MIN_WINDOW = timedelta(milliseconds=1)  # the archive's time resolution: a window cannot usefully get narrower
_MAX_WINDOW = timedelta(days=3650)
_FUTURE_SLACK = timedelta(days=1)  # a reverse read starts at most this far past the bridge clock (clock skew)
_ALL = sys.maxsize  # skip count meaning "every value at that timestamp"


@dataclass
class _RawCursor:
    tag: TagInfo
    first: datetime  # where the read starts: StartTime, or EndTime when only that was given
    end: datetime | None  # EndTime (excluded); None: open, NumValuesPerNode decides
    reverse: bool
    per_call: int  # values per answer
    remaining: int | None  # open reads: values still owed; None: everything up to `end`
    bounds: bool
    at: datetime  # the next value is at or beyond this time
    skip: int  # values with timestamp == at already delivered (_ALL: none of them is data)
    delivered: bool = False
    data_done: bool = False  # only the end bound is left to send
    window: timedelta = _FIRST_WINDOW  # reverse reads: the window width that fitted the data density
    started: bool = False  # the start bound (if asked for) is sent
    stream: PageStream | None = None  # forward reads: the archive read a continuation point goes on with

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None


@dataclass
class _Window:
    """One reverse window's values, oldest first: at most `budget` of them (the newest)."""

    values: list[ArchiveValue] = field(default_factory=list)
    overflow_at: datetime | None = None  # set when the window held more than the budget: where the excess began
    first_at: datetime | None = None  # ... and where its first value was (the data may begin well after lo)


class RawReads:
    """Raw reads of archived tags, with their continuation points in `points`."""

    def __init__(self, archive: Archive, points: ContinuationPoints, max_values_per_read: int) -> None:
        self._archive = archive
        self._points = points
        self._max_values = max_values_per_read

    def _dv(self, tag: TagInfo, v: ArchiveValue) -> ua.DataValue:
        return data_value(tag.data_type, v)

    async def read(
        self, session: InternalSession, tag: TagInfo, d: ua.ReadRawModifiedDetails, cp: bytes | None
    ) -> ua.HistoryReadResult:
        if d.IsReadModified:
            return result(S.BadHistoryOperationUnsupported)
        # archived values as they come (encoded in one go at the end, see encode.py) and bound DataValues
        values: list[ArchiveValue | ua.DataValue] = []
        if cp:
            cursor = self._points.take(session, cp)
            if not isinstance(cursor, _RawCursor) or cursor.tag.name != tag.name:
                return result(S.BadContinuationPointInvalid)
            if cursor.data_done:
                return raw_result(S.Good, tag.data_type, [await self._end_bound(cursor)])
        else:
            new = self._new_raw(tag, d)
            if new is None:
                return result(S.BadInvalidTimestampArgument)
            cursor = new
        if out_of_budget():  # the request's time went to its other nodes: nothing done here yet, come back
            return result(S.Good, [], self._points.store(session, cursor))
        if not cursor.started:
            cursor.started = True
            if cursor.bounds:
                values = await self._start_bound(cursor)
        limit = cursor.per_call if cursor.remaining is None else min(cursor.per_call, cursor.remaining)
        more = await (
            self._raw_reverse(cursor, values, limit) if cursor.reverse else self._raw_forward(cursor, values, limit)
        )
        if cursor.remaining is not None:
            cursor.remaining -= len(values)
            more = more and cursor.remaining > 0
        if more:
            return raw_result(S.Good, tag.data_type, values, self._points.store(session, cursor))
        await cursor.close()
        # StartTime == EndTime with values at that instant: they are their own bounds
        if cursor.bounds and cursor.end is not None and not (cursor.end == cursor.first and cursor.delivered):
            if len(values) >= limit:  # the end bound would exceed NumValuesPerNode: it gets its own answer
                cursor.data_done = True
                return raw_result(S.Good, tag.data_type, values, self._points.store(session, cursor))
            values.append(await self._end_bound(cursor))
        return raw_result(S.Good if values else S.GoodNoData, tag.data_type, values)

    def _new_raw(self, tag: TagInfo, d: ua.ReadRawModifiedDetails) -> _RawCursor | None:
        start, end = utc(d.StartTime), utc(d.EndTime)
        n = int(d.NumValuesPerNode or 0)
        if start is None and end is None or (start is None or end is None) and n == 0:
            return None
        cap = self._max_values
        bounds = bool(d.ReturnBounds)
        if start is None:  # only EndTime: the newest values before it, newest first; EndTime itself is not data
            assert end is not None
            return _RawCursor(tag, end, None, True, min(n, cap), n, bounds, end, _ALL)
        if end is None:  # only StartTime: the oldest values from it on
            return _RawCursor(tag, start, None, False, min(n, cap), n, bounds, start, 0)
        return _RawCursor(tag, start, end, start > end, min(n or cap, cap), None, bounds, start, 0)

    async def _start_bound(self, c: _RawCursor) -> list[ua.DataValue]:
        if c.skip != _ALL:  # the start time belongs to the data: a value exactly there is its own bound
            async with aclosing(self._archive.pages(c.tag, c.first, c.first)) as pages:
                async for page in pages:
                    if any(v.timestamp == c.first for v in page):
                        return []
        if c.reverse:
            bound, _ = await self._archive.scan_forward(c.tag, c.first, inclusive=c.skip == _ALL)
        else:
            bound, _, _ = await self._archive.scan_back(c.tag, c.first, inclusive=False)
        return [self._dv(c.tag, bound) if bound is not None else not_found(c.first)]

    async def _end_bound(self, c: _RawCursor) -> ua.DataValue:
        assert c.end is not None
        if c.reverse:
            bound, _, _ = await self._archive.scan_back(c.tag, c.end, inclusive=True)
        else:
            bound, _ = await self._archive.scan_forward(c.tag, c.end, inclusive=True)
        return self._dv(c.tag, bound) if bound is not None else not_found(c.end)

    def _advance(self, cursor: _RawCursor, v: ArchiveValue) -> None:
        if v.timestamp == cursor.at:
            cursor.skip += 1
        else:
            cursor.at, cursor.skip = v.timestamp, 1
        cursor.delivered = True

    async def _raw_forward(self, c: _RawCursor, values: list[ArchiveValue | ua.DataValue], limit: int) -> bool:
        """Append values oldest first up to `limit`; True when at least one more value exists. The archive read
        stays open in the cursor (pages.py): a continuation goes on with it, one page fetched ahead."""
        instant = c.end is not None and c.end == c.first
        if c.stream is None:
            top = c.end if c.end is not None else datetime.now(UTC)
            c.stream = PageStream(self._archive.pages(c.tag, c.at, top, resumable=True))
            skip, resume = c.skip, c.at  # a new read from c.at: the values already delivered there come again
        else:
            skip, resume = 0, c.at
        had = len(values)
        end = c.end if c.end is not None and not instant else None
        while (page := await c.stream.page()) is not None:
            for i, v in enumerate(page):
                if end is not None and v.timestamp >= end:
                    return False  # EndTime is outside the time domain, and the archive is sorted
                if skip > 0 and v.timestamp == resume:
                    skip -= 1
                    continue
                if len(values) >= limit:
                    c.stream.put_back(page[i:])
                    return True
                values.append(v)
                self._advance(c, v)
            if len(values) > had and out_of_budget():
                return True  # out of budget: the stream goes on from here with the next call
        return False

    async def _raw_reverse(self, c: _RawCursor, values: list[ua.DataValue], limit: int) -> bool:
        """Append values newest first up to `limit`, walking back in windows; True when one more value exists.

        The archive answers oldest first, so each window [lo, hi] is read whole; its width follows the data
        density so that it holds about the values still needed, and a window that turns out to hold more than
        that is abandoned early and narrowed. Values at a window's lower edge belong to it, not to the next one."""
        floor = c.end  # excluded
        bottom = floor if floor is not None else _EPOCH
        hi, hi_in = min(c.at, datetime.now(UTC) + _FUTURE_SLACK), True
        skip, resume = c.skip, c.at
        width = c.window
        while True:
            lo = max(bottom, hi - width)
            budget = limit - len(values) + (0 if skip == _ALL else skip) + 1
            window = await self._window(c.tag, lo, hi, hi_in, budget, resume if skip == _ALL else None)
            if window.overflow_at is not None and hi - lo > _MIN_WINDOW:
                # too dense for this width: the first `budget` values spanned first_at .. overflow_at
                assert window.first_at is not None
                width = max(_MIN_WINDOW, min((hi - lo) / 2, window.overflow_at - window.first_at))
                continue
            for v in reversed(window.values):
                if floor is not None and v.timestamp <= floor:
                    continue
                if v.timestamp == resume and skip > 0:
                    skip -= 1
                    continue
                if len(values) >= limit:
                    c.window = width
                    return True
                values.append(v)
                self._advance(c, v)
            if lo <= bottom:
                return False
            n = len(window.values)
            width = width * 4 if n == 0 else width * min(4.0, max(0.25, budget / n))
            width = min(_MAX_WINDOW, max(_MIN_WINDOW, width))
            c.window = width
            hi, hi_in = lo, False
            if out_of_budget():  # out of budget with a whole window taken: resume below it
                c.at, c.skip = hi, _ALL
                return True

    async def _window(
        self, tag: TagInfo, lo: datetime, hi: datetime, hi_in: bool, budget: int, exclude: datetime | None
    ) -> _Window:
        kept: deque[ArchiveValue] = deque(maxlen=budget)
        seen = 0
        first_at: datetime | None = None
        async with aclosing(self._archive.pages(tag, lo, hi)) as pages:
            async for page in pages:
                for v in page:
                    if v.timestamp > hi or (v.timestamp == hi and not hi_in) or v.timestamp == exclude:
                        continue
                    seen += 1
                    first_at = first_at or v.timestamp
                    if seen > budget and hi - lo > _MIN_WINDOW:
                        return _Window(overflow_at=v.timestamp, first_at=first_at)
                    kept.append(v)  # a window that cannot get narrower keeps only its newest `budget` values
        return _Window(list(kept))
