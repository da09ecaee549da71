"""HistoryRead served from the WinCC archive: raw (with bounds, reverse order and continuation points),
processed (Part 13 aggregates, see aggregates.py) and at-time.

- Rights: the same as Read; a session without a role gets BadUserAccessDenied per node (asyncua checks nothing).
- A node that is not an archived tag answers BadHistoryOperationUnsupported; an unknown one BadNodeIdUnknown.
- Nodes of one request are read concurrently, at most `history.max_concurrency` at a time; one node's REST
  failure gives that node BadCommunicationError and leaves the others alone.
- Time domain (OPC 10000-11 3.1.x "TimeDomain", 4.4, 6.5.3.2): a raw read covers [StartTime, EndTime), or
  (EndTime, StartTime] newest first when StartTime > EndTime; a value exactly at EndTime is not data (with
  ReturnBounds it is the end bound), except that StartTime == EndTime asks for the values at that instant. With
  only EndTime and NumValuesPerNode the read walks back from just before EndTime; with only StartTime forward
  from it; either way NumValuesPerNode values are the whole answer.
- Bounds (Part 11 4.4): the value at the start time if there is one (it is data), else the nearest value outside
  the range on that side; at the end the value at or beyond EndTime. None found within the search reach ->
  a BadBoundNotFound value stamped with the requested time. Bounds count towards NumValuesPerNode.
- Paging: no answer carries more than `history.max_values_per_read` values (raw) or intervals (processed) per
  node, whatever NumValuesPerNode says (advertised as MaxReturnDataValues); past it a continuation point follows.
  A raw continuation point remembers (timestamp, how many values with exactly that timestamp were already
  delivered), so equal timestamps are never repeated or lost at a page edge.
- Memory: the archive is streamed page by page (`history.page_size` values per REST request) into the answer or
  the aggregate engine; nothing loads a whole range. Reverse reads walk back in windows sized by the data density,
  so one window never holds much more than the values the answer still needs.
- Continuation points are per session, at most `history.max_continuation_points` (the oldest is dropped), freed
  by ReleaseContinuationPoints or when the session closes.
- Work per answer (a HistoryRead must not make the bridge walk the archive open-endedly): at most
  `history.max_requests_per_read` archive REST requests per node and `history.max_read_s` seconds per request.
  Where that runs out a raw read stops at the next point it can resume from and answers what it has (possibly
  nothing) with a continuation point; a processed read (forward) answers the intervals finished so far. Twice
  that work (plus room to finish a reverse window) without such a point answers BadTooManyOperations. A node
  reached after the request's time is spent (many nodes, a slow WinCC) answers no values and a continuation
  point at once, so every node of a big request gets its turn in later calls. A reverse read never starts later
  than a day past the bridge clock (no archive holds the future), and every time is clamped to the years date
  arithmetic can reach (EndTime 9999-12-31 is fine).
- ReadEvent (alarm history) is answered by `event_reader` when one is set (the alarms feature), otherwise
  BadHistoryOperationUnsupported.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Server, ua

from bridge.config import HistoryConfig
from bridge.opcua._asyncua import InternalSession, address_space
from bridge.opcua.history.aggregates import (
    AGGREGATES,
    AggregateSettings,
    AtTimeEngine,
    IntervalEngine,
    IntervalPlan,
    Sample,
    Slot,
)
from bridge.opcua.history.budget import TooMuchWork, Work, current_work, out_of_budget
from bridge.opcua.history.encode import data_value, raw_result
from bridge.opcua.history.pages import PageStream
from bridge.opcua.model.status import quality_to_status
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import VARIANT_TYPES, from_wincc
from bridge.opcua.security.users import role_of
from bridge.wincc.client import WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import ArchiveValue, DataType, TagInfo

__all__ = ["HistoryService"]

log = logging.getLogger(__name__)
S = ua.StatusCodes
O = ua.ObjectIds
_MIN_TIME = datetime(1601, 1, 2, tzinfo=UTC)  # "not specified" in OPC UA (DateTime 0) decodes near 1601-01-01
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # how far back an open reverse read walks
# how far a bound search looks beyond the requested time (server specific, Part 11 4.4); each step is one window
_BOUND_REACH = (timedelta(seconds=10), timedelta(minutes=10), timedelta(days=1), timedelta(days=31))
_FIRST_WINDOW = timedelta(minutes=1)  # the first reverse window, before the data density is known
_MIN_WINDOW = timedelta(milliseconds=1)  # the archive's time resolution: a window cannot usefully get narrower
_MAX_WINDOW = timedelta(days=3650)
_LATEST = datetime(9999, 11, 1, tzinfo=UTC)  # later times are clamped: t + the longest bound reach stays valid
_FUTURE_SLACK = timedelta(days=1)  # a reverse read starts at most this far past the bridge clock (clock skew)
_ALL = sys.maxsize  # skip count meaning "every value at that timestamp"
_NUMERIC = {
    DataType.bool,
    DataType.int8,
    DataType.int16,
    DataType.int32,
    DataType.int64,
    DataType.uint8,
    DataType.uint16,
    DataType.uint32,
    DataType.uint64,
    DataType.float,
    DataType.double,
}

# ReadEvent requests (and releasing their continuation points) go whole to the event reader (history/events.py)
EventReader = Callable[[InternalSession, ua.HistoryReadParameters], Awaitable[list[ua.HistoryReadResult]]]


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return None if t <= _MIN_TIME else min(t, _LATEST)


def _result(code: int, values: list[ua.DataValue] | None = None, cp: bytes | None = None) -> ua.HistoryReadResult:
    return ua.HistoryReadResult(
        StatusCode=ua.StatusCode(code), ContinuationPoint=cp, HistoryData=ua.HistoryData(DataValues=values or [])
    )


def _not_found(t: datetime) -> ua.DataValue:
    return ua.DataValue(StatusCode=ua.StatusCode(S.BadBoundNotFound), SourceTimestamp=t, ServerTimestamp=t)


def _distinct(*values: ArchiveValue | None) -> list[ArchiveValue]:
    """The given values (already in time order) without Nones and without repeating one object."""
    out: list[ArchiveValue] = []
    for v in values:
        if v is not None and all(v is not o for o in out):
            out.append(v)
    return out


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
class _ProcessedCursor:
    tag: TagInfo
    aggregate: int
    plan: IntervalPlan
    settings: AggregateSettings
    next: int = 0  # the next interval (request order)


_Cursor = _RawCursor | _ProcessedCursor


@dataclass
class _Window:
    """One reverse window's values, oldest first: at most `budget` of them (the newest)."""

    values: list[ArchiveValue] = field(default_factory=list)
    overflow_at: datetime | None = None  # set when the window held more than the budget: where the excess began
    first_at: datetime | None = None  # ... and where its first value was (the data may begin well after lo)


class HistoryService:
    def __init__(self, server: Server, directory: TagDirectory, client: WinCCClient, config: HistoryConfig) -> None:
        self._server = server
        self._directory = directory
        self._client = client
        self._config = config
        self._gate = asyncio.Semaphore(config.max_concurrency)
        self._cursors: dict[Any, OrderedDict[bytes, _Cursor]] = {}
        a = config.aggregates
        self._defaults = AggregateSettings(
            a.treat_uncertain_as_bad, a.percent_data_bad, a.percent_data_good, a.use_sloped_extrapolation
        )
        self.event_reader: EventReader | None = None

    # ---- capabilities -------------------------------------------------------------------------------------
    async def setup(self) -> None:
        caps = {
            O.HistoryServerCapabilities_AccessHistoryDataCapability: True,
            O.HistoryServerCapabilities_AccessHistoryEventsCapability: self.event_reader is not None,
            O.HistoryServerCapabilities_InsertDataCapability: False,
            O.HistoryServerCapabilities_ReplaceDataCapability: False,
            O.HistoryServerCapabilities_UpdateDataCapability: False,
            O.HistoryServerCapabilities_DeleteRawCapability: False,
            O.HistoryServerCapabilities_DeleteAtTimeCapability: False,
            O.HistoryServerCapabilities_InsertEventCapability: False,
            O.HistoryServerCapabilities_ReplaceEventCapability: False,
            O.HistoryServerCapabilities_UpdateEventCapability: False,
            O.HistoryServerCapabilities_DeleteEventCapability: False,
            O.HistoryServerCapabilities_InsertAnnotationCapability: False,
            O.HistoryServerCapabilities_ServerTimestampSupported: False,  # ServerTimestamp = SourceTimestamp
            O.DefaultHAConfiguration_Stepped: False,  # values are interpolated with sloped lines
            O.DefaultHAConfiguration_AggregateConfiguration_TreatUncertainAsBad: self._defaults.treat_uncertain_as_bad,
            O.DefaultHAConfiguration_AggregateConfiguration_UseSlopedExtrapolation: self._defaults.use_sloped_extrapolation,
        }
        for ident, value in caps.items():
            await self._set(ident, ua.Variant(value, ua.VariantType.Boolean))
        numbers = {
            O.HistoryServerCapabilities_MaxReturnDataValues: (self._config.max_values_per_read, ua.VariantType.UInt32),
            O.HistoryServerCapabilities_MaxReturnEventValues: (0, ua.VariantType.UInt32),
            O.Server_ServerCapabilities_MaxHistoryContinuationPoints: (
                min(self._config.max_continuation_points, 0xFFFF),
                ua.VariantType.UInt16,
            ),
            O.DefaultHAConfiguration_AggregateConfiguration_PercentDataBad: (
                self._defaults.percent_data_bad,
                ua.VariantType.Byte,
            ),
            O.DefaultHAConfiguration_AggregateConfiguration_PercentDataGood: (
                self._defaults.percent_data_good,
                ua.VariantType.Byte,
            ),
        }
        for ident, (number, vt) in numbers.items():
            await self._set(ident, ua.Variant(number, vt))
        for folder in (
            O.HistoryServerCapabilities_AggregateFunctions,
            O.Server_ServerCapabilities_AggregateFunctions,
            O.DefaultHAConfiguration_AggregateFunctions,
        ):
            if ua.NodeId(folder) not in address_space(self._server):
                continue
            node = self._server.get_node(ua.NodeId(folder))
            have = {r.NodeId for r in await node.get_references(O.Organizes)}
            for ident in AGGREGATES:
                if ua.NodeId(ident) not in have:
                    await node.add_reference(ua.NodeId(ident), O.Organizes, forward=True, bidirectional=False)

    async def _set(self, ident: int, variant: ua.Variant) -> None:
        node_id = ua.NodeId(ident)
        if node_id in address_space(self._server):
            await self._server.write_attribute_value(node_id, ua.DataValue(variant))

    # ---- sessions -----------------------------------------------------------------------------------------
    def release(self, session: InternalSession) -> None:
        self._cursors.pop(session.session_id, None)

    def _store(self, session: InternalSession, cursor: _Cursor) -> bytes:
        points = self._cursors.setdefault(session.session_id, OrderedDict())
        while len(points) >= self._config.max_continuation_points:
            points.popitem(last=False)
        key = os.urandom(16)
        points[key] = cursor
        return key

    def _take(self, session: InternalSession, cp: bytes) -> _Cursor | None:
        return self._cursors.get(session.session_id, OrderedDict()).pop(bytes(cp), None)

    # ---- the service --------------------------------------------------------------------------------------
    async def read(self, session: InternalSession, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        nodes = list(params.NodesToRead)
        if isinstance(details, ua.ReadEventDetails):
            if self.event_reader is None:
                return [_result(S.BadHistoryOperationUnsupported) for _ in nodes]
            return await self.event_reader(session, params)
        if params.ReleaseContinuationPoints:
            for n in nodes:
                if n.ContinuationPoint:
                    self._take(session, n.ContinuationPoint)
            return [_result(S.Good) for _ in nodes]
        if params.TimestampsToReturn == ua.TimestampsToReturn.Neither or params.TimestampsToReturn > 3:
            return [_result(S.BadTimestampsToReturnInvalid) for _ in nodes]
        role = role_of(session.user)
        deadline = time.monotonic() + self._config.max_read_s  # one time budget for all nodes of the request

        async def one(i: int, node: ua.HistoryReadValueId) -> ua.HistoryReadResult:
            tag = self._directory.tag_for(node.NodeId)
            if tag is None:
                known = node.NodeId in address_space(self._server)
                return _result(S.BadHistoryOperationUnsupported if known else S.BadNodeIdUnknown)
            if role is None:
                return _result(S.BadUserAccessDenied)
            if not tag.archived:
                return _result(S.BadHistoryOperationUnsupported)
            if node.IndexRange:
                return _result(S.BadIndexRangeInvalid)
            async with self._gate:
                current_work.set(self._new_work(deadline))
                try:
                    if isinstance(details, ua.ReadRawModifiedDetails):
                        return await self._raw(session, tag, details, node.ContinuationPoint)
                    if isinstance(details, ua.ReadProcessedDetails):
                        agg = details.AggregateType[i] if i < len(details.AggregateType) else None
                        return await self._processed(session, tag, details, agg, node.ContinuationPoint)
                    if isinstance(details, ua.ReadAtTimeDetails):
                        return await self._at_time(tag, details)
                    return _result(S.BadHistoryOperationInvalid)
                except WinCCError as exc:
                    log.warning("archive read of %s failed: %s", tag.name, exc)
                    return _result(S.BadCommunicationError)
                except TooMuchWork:
                    log.warning(
                        "history read of %s refused: more than %d archive requests or %.0f s for one answer",
                        tag.name,
                        self._new_work(0).hard,
                        2 * self._config.max_read_s,
                    )
                    return _result(S.BadTooManyOperations)
                except Exception:  # a bug must cost this node its answer, not the whole request
                    log.exception("history read of %s failed", tag.name)
                    return _result(S.BadInternalError)

        return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(nodes))))

    def _new_work(self, deadline: float) -> Work:
        cfg = self._config
        # past the budget a read still finishes the window it is in: a reverse window that turns out too dense
        # is read again narrower, each attempt up to max_values_per_read / page_size + 1 requests; three allowed
        window = cfg.max_values_per_read // cfg.page_size + 2
        return Work(cfg.max_requests_per_read, 2 * cfg.max_requests_per_read + 3 * window, cfg.max_read_s, deadline)

    # ---- values -------------------------------------------------------------------------------------------
    def _dv(self, tag: TagInfo, v: ArchiveValue) -> ua.DataValue:
        return data_value(tag.data_type, v)

    @staticmethod
    def _sample(tag: TagInfo, v: ArchiveValue) -> Sample:
        code = quality_to_status(v.quality).value
        try:
            value = float(from_wincc(tag.data_type, v.value))
        except (ValueError, TypeError, OverflowError):
            return Sample(v.timestamp, math.nan, False, False, S.BadTypeMismatch)
        severity = code >> 30  # 0 Good, 1 Uncertain, 2 (3) Bad
        return Sample(v.timestamp, value, severity == 0, severity == 1, code)

    async def _pages(
        self, tag: TagInfo, lo: datetime, hi: datetime, resumable: bool = False
    ) -> AsyncIterator[list[ArchiveValue]]:
        """The archive over [lo, hi], page by page; each REST request is paid from the budget of the call that
        asks for it (looked up per request: a forward read's stream outlives its call). A `resumable` read is only
        counted, never refused: it stops at its own checks and goes on with the next call."""

        def pay() -> None:
            work = current_work.get()
            if work is not None:
                work.spend(strict=not resumable)

        pay()  # the first request
        async with aclosing(self._client.archive(tag, lo, hi, self._config.page_size)) as pages:
            async for page in pages:
                yield page
                pay()  # asking for the next page is the next request

    async def _scan_back(
        self, tag: TagInfo, t: datetime, inclusive: bool, usable: Callable[[ArchiveValue], bool] | None = None
    ) -> tuple[ArchiveValue | None, ArchiveValue | None, ArchiveValue | None]:
        """The last value before t (or at it, if inclusive) and, with `usable`, the last two usable ones, looking
        back in non-overlapping windows of growing reach."""
        last = u1 = u2 = None
        hi, hi_in = t, inclusive
        for reach in _BOUND_REACH:
            lo = t - reach
            w_last = w_u1 = w_u2 = None
            async with aclosing(self._pages(tag, lo, hi)) as pages:
                async for page in pages:
                    for v in page:
                        if v.timestamp > hi or (v.timestamp == hi and not hi_in):
                            continue
                        w_last = v
                        if usable is not None and usable(v):
                            w_u2, w_u1 = w_u1, v
            last = last or w_last
            if u1 is None:
                u1, u2 = w_u1, w_u2
            elif u2 is None:
                u2 = w_u1
            if last is not None and (usable is None or u1 is not None):
                break
            hi, hi_in = lo, False
        return last, u1, u2

    async def _scan_forward(
        self, tag: TagInfo, t: datetime, inclusive: bool, usable: Callable[[ArchiveValue], bool] | None = None
    ) -> tuple[ArchiveValue | None, ArchiveValue | None]:
        """The first value after t (or at it, if inclusive) and, with `usable`, the first usable one."""
        first = None
        lo, lo_in = t, inclusive
        for reach in _BOUND_REACH:
            hi = min(t, _LATEST) + reach
            async with aclosing(self._pages(tag, lo, hi)) as pages:
                async for page in pages:
                    for v in page:
                        if v.timestamp < lo or (v.timestamp == lo and not lo_in):
                            continue
                        first = first or v
                        if usable is None:
                            return first, None
                        if usable(v):
                            return first, v
            lo, lo_in = hi, False
        return first, None

    # ---- raw ----------------------------------------------------------------------------------------------
    def _new_raw(self, tag: TagInfo, d: ua.ReadRawModifiedDetails) -> _RawCursor | None:
        start, end = _utc(d.StartTime), _utc(d.EndTime)
        n = int(d.NumValuesPerNode or 0)
        if start is None and end is None or (start is None or end is None) and n == 0:
            return None
        cap = self._config.max_values_per_read
        bounds = bool(d.ReturnBounds)
        if start is None:  # only EndTime: the newest values before it, newest first; EndTime itself is not data
            assert end is not None
            return _RawCursor(tag, end, None, True, min(n, cap), n, bounds, end, _ALL)
        if end is None:  # only StartTime: the oldest values from it on
            return _RawCursor(tag, start, None, False, min(n, cap), n, bounds, start, 0)
        return _RawCursor(tag, start, end, start > end, min(n or cap, cap), None, bounds, start, 0)

    async def _raw(
        self, session: InternalSession, tag: TagInfo, d: ua.ReadRawModifiedDetails, cp: bytes | None
    ) -> ua.HistoryReadResult:
        if d.IsReadModified:
            return _result(S.BadHistoryOperationUnsupported)
        # archived values as they come (encoded in one go at the end, see encode.py) and bound DataValues
        values: list[ArchiveValue | ua.DataValue] = []
        if cp:
            cursor = self._take(session, cp)
            if not isinstance(cursor, _RawCursor) or cursor.tag.name != tag.name:
                return _result(S.BadContinuationPointInvalid)
            if cursor.data_done:
                return raw_result(S.Good, tag.data_type, [await self._end_bound(cursor)])
        else:
            new = self._new_raw(tag, d)
            if new is None:
                return _result(S.BadInvalidTimestampArgument)
            cursor = new
        if out_of_budget():  # the request's time went to its other nodes: nothing done here yet, come back
            return _result(S.Good, [], self._store(session, cursor))
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
            return raw_result(S.Good, tag.data_type, values, self._store(session, cursor))
        await cursor.close()
        # StartTime == EndTime with values at that instant: they are their own bounds
        if cursor.bounds and cursor.end is not None and not (cursor.end == cursor.first and cursor.delivered):
            if len(values) >= limit:  # the end bound would exceed NumValuesPerNode: it gets its own answer
                cursor.data_done = True
                return raw_result(S.Good, tag.data_type, values, self._store(session, cursor))
            values.append(await self._end_bound(cursor))
        return raw_result(S.Good if values else S.GoodNoData, tag.data_type, values)

    async def _start_bound(self, c: _RawCursor) -> list[ua.DataValue]:
        if c.skip != _ALL:  # the start time belongs to the data: a value exactly there is its own bound
            async with aclosing(self._pages(c.tag, c.first, c.first)) as pages:
                async for page in pages:
                    if any(v.timestamp == c.first for v in page):
                        return []
        if c.reverse:
            bound, _ = await self._scan_forward(c.tag, c.first, inclusive=c.skip == _ALL)
        else:
            bound, _, _ = await self._scan_back(c.tag, c.first, inclusive=False)
        return [self._dv(c.tag, bound) if bound is not None else _not_found(c.first)]

    async def _end_bound(self, c: _RawCursor) -> ua.DataValue:
        assert c.end is not None
        if c.reverse:
            bound, _, _ = await self._scan_back(c.tag, c.end, inclusive=True)
        else:
            bound, _ = await self._scan_forward(c.tag, c.end, inclusive=True)
        return self._dv(c.tag, bound) if bound is not None else _not_found(c.end)

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
            c.stream = PageStream(self._pages(c.tag, c.at, top, resumable=True))
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
        async with aclosing(self._pages(tag, lo, hi)) as pages:
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

    # ---- processed ----------------------------------------------------------------------------------------
    def _settings_for(self, cfg: ua.AggregateConfiguration | None) -> AggregateSettings | None:
        """The request's AggregateConfiguration (Part 13 4.2.1.2), or the server defaults when it asks for them;
        None when it is out of range."""
        if cfg is None or cfg.UseServerCapabilitiesDefaults:
            return self._defaults
        if not (0 <= cfg.PercentDataBad <= 100 and 0 <= cfg.PercentDataGood <= 100):
            return None
        return AggregateSettings(
            bool(cfg.TreatUncertainAsBad),
            int(cfg.PercentDataBad),
            int(cfg.PercentDataGood),
            bool(cfg.UseSlopedExtrapolation),
        )

    async def _processed(
        self,
        session: InternalSession,
        tag: TagInfo,
        d: ua.ReadProcessedDetails,
        aggregate: ua.NodeId | None,
        cp: bytes | None,
    ) -> ua.HistoryReadResult:
        if cp:
            cursor = self._take(session, cp)
            if not isinstance(cursor, _ProcessedCursor) or cursor.tag.name != tag.name:
                return _result(S.BadContinuationPointInvalid)
        else:
            start, end = _utc(d.StartTime), _utc(d.EndTime)
            if start is None or end is None:
                return _result(S.BadInvalidTimestampArgument)
            if aggregate is None or aggregate.NamespaceIndex != 0 or aggregate.Identifier not in AGGREGATES:
                return _result(S.BadAggregateNotSupported)
            if tag.data_type not in _NUMERIC:
                return _result(S.BadAggregateInvalidInputs)
            settings = self._settings_for(d.AggregateConfiguration)
            if settings is None:
                return _result(S.BadAggregateConfigurationRejected)
            interval = float(d.ProcessingInterval or 0)
            if start == end or interval < 0 or not math.isfinite(interval):
                return _result(S.BadInvalidArgument)  # Part 13 5.4.2.2 Table 12
            cursor = _ProcessedCursor(tag, int(aggregate.Identifier), IntervalPlan(start, end, interval), settings)
        plan = cursor.plan
        if out_of_budget():  # the request's time went to its other nodes: nothing done here yet, come back
            return _result(S.Good, [], self._store(session, cursor))
        count = min(self._config.max_values_per_read, plan.count - cursor.next)
        values = await self._aggregate(
            tag, cursor.aggregate, plan.slots(cursor.next, count), cursor.settings, may_stop=not plan.reverse
        )
        if plan.reverse:
            values.reverse()  # computed oldest first; the request wants them from StartTime backwards
        cursor.next += len(values)
        more = cursor.next < plan.count
        return _result(S.Good, values, self._store(session, cursor) if more else None)

    async def _aggregate(
        self, tag: TagInfo, aggregate: int, slots: list[Slot], settings: AggregateSettings, may_stop: bool = False
    ) -> list[ua.DataValue]:
        """Stream the archive over `slots` (time order) through the aggregate engine: the values before the first
        interval that serve as its bounds, every value inside, the first ones after the last. With `may_stop`,
        running out of work budget answers the first intervals finished so far (at least one)."""
        engine = IntervalEngine(aggregate, slots, settings)
        lo, hi = slots[0].t0, slots[-1].t1

        def usable(v: ArchiveValue) -> bool:
            return settings.usable(self._sample(tag, v))

        for v in _distinct(*await self._scan_back(tag, lo, inclusive=False, usable=usable))[::-1]:
            engine.feed(self._sample(tag, v))
        out: list[ua.DataValue] = []
        async with aclosing(self._pages(tag, lo, hi)) as pages:
            async for page in pages:
                for v in page:
                    engine.feed(self._sample(tag, v))
                out.extend(engine.drain())
                if may_stop and out and out_of_budget():
                    return out
                await asyncio.sleep(0)  # a long range is many pages: let the server answer others in between
        if engine.waiting:
            for v in _distinct(*await self._scan_forward(tag, hi, inclusive=False, usable=usable)):
                engine.feed(self._sample(tag, v))
        out.extend(engine.finish())
        if engine.ignored:
            log.warning("archive of %s answered %d values out of time order; ignored", tag.name, engine.ignored)
        return out

    # ---- at time ------------------------------------------------------------------------------------------
    async def _at_time(self, tag: TagInfo, d: ua.ReadAtTimeDetails) -> ua.HistoryReadResult:
        times = [_utc(t) for t in d.ReqTimes]
        if not times or any(t is None for t in times):
            return _result(S.BadInvalidTimestampArgument)
        req: list[datetime] = [t for t in times if t is not None]
        settings = self._defaults
        engine = AtTimeEngine(req, bool(d.UseSimpleBounds), settings)
        lo, hi = min(req), max(req)

        def usable(v: ArchiveValue) -> bool:
            return settings.usable(self._sample(tag, v))

        for v in _distinct(*await self._scan_back(tag, lo, inclusive=False, usable=usable))[::-1]:
            engine.feed(self._sample(tag, v))
        async with aclosing(self._pages(tag, lo, hi)) as pages:
            async for page in pages:
                for v in page:
                    engine.feed(self._sample(tag, v))
                await asyncio.sleep(0)
        for v in _distinct(*await self._scan_forward(tag, hi, inclusive=False, usable=usable)):
            engine.feed(self._sample(tag, v))
        out = engine.finish()
        vt = VARIANT_TYPES[tag.data_type]
        for dv in out:
            if dv.Value is not None and dv.Value.Value is not None and dv.StatusCode.value & 0x3 == 0:
                try:  # a raw value keeps the tag's type (Part 11 6.5.5.2: Raw bit)
                    dv.Value = ua.Variant(from_wincc(tag.data_type, dv.Value.Value), vt)
                except (ValueError, TypeError):
                    pass
        return _result(S.Good, out)
