"""HistoryRead served from the WinCC archive: raw (with bounds, reverse order and continuation points),
processed (Part 13 aggregates, see aggregates.py) and at-time.

- Rights: the same as Read; a session without a role gets BadUserAccessDenied per node (asyncua checks nothing).
- A node that is not an archived tag answers BadHistoryOperationUnsupported; an unknown one BadNodeIdUnknown.
- Nodes of one request are read concurrently, at most `history.max_concurrency` at a time; one node's REST
  failure gives that node BadCommunicationError and leaves the others alone.
- Raw reads stream the archive page by page (`history.page_size` values per REST request) and stop after
  NumValuesPerNode; the continuation point remembers (timestamp, how many values with exactly that timestamp were
  already delivered), so equal timestamps are never repeated or lost at a page edge. Reverse reads walk back in
  time in growing windows, so neither direction loads a long range into memory.
- Continuation points are per session, at most `history.max_continuation_points` (the oldest is dropped), freed
  by ReleaseContinuationPoints or when the session closes.
- ReadEvent (alarm history) is answered by `event_reader` when one is set (the alarms feature), otherwise
  BadHistoryOperationUnsupported.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Server, ua
from asyncua.server.internal_session import InternalSession

from bridge.config import HistoryConfig
from bridge.opcua.aggregates import AGGREGATES, Sample, compute, interpolate
from bridge.opcua.aggregates import INTERPOLATED as _INTERPOLATED_BIT
from bridge.opcua.status import quality_to_status
from bridge.opcua.tags import TagDirectory
from bridge.opcua.types import VARIANT_TYPES, from_wincc
from bridge.opcua.users import role_of
from bridge.wincc.client import WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import ArchiveValue, DataType, TagInfo

__all__ = ["HistoryService"]

log = logging.getLogger(__name__)
S = ua.StatusCodes
_MIN_TIME = datetime(1601, 1, 2, tzinfo=UTC)  # "not specified" in OPC UA (DateTime 0) decodes near 1601-01-01
_BOUND_WINDOWS = (timedelta(seconds=10), timedelta(minutes=10), timedelta(days=1), timedelta(days=31))
_NUMERIC = {DataType.bool, DataType.int8, DataType.int16, DataType.int32, DataType.int64, DataType.uint8,
            DataType.uint16, DataType.uint32, DataType.uint64, DataType.float, DataType.double}

EventReader = Callable[[InternalSession, ua.HistoryReadValueId, ua.ReadEventDetails], Awaitable[ua.HistoryReadResult]]


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return None if t <= _MIN_TIME else t


def _result(code: int, values: list[ua.DataValue] | None = None, cp: bytes | None = None) -> ua.HistoryReadResult:
    return ua.HistoryReadResult(StatusCode=ua.StatusCode(code), ContinuationPoint=cp,
                                HistoryData=ua.HistoryData(DataValues=values or []))


@dataclass
class _RawCursor:
    tag: TagInfo
    end: datetime | None  # the far end of the read (None: open)
    reverse: bool
    limit: int
    bounds: bool
    at: datetime  # next read starts here (forward: >= at; reverse: <= at)
    skip: int  # values with timestamp == at already delivered


class HistoryService:
    def __init__(self, server: Server, directory: TagDirectory, client: WinCCClient, config: HistoryConfig) -> None:
        self._server = server
        self._directory = directory
        self._client = client
        self._config = config
        self._gate = asyncio.Semaphore(config.max_concurrency)
        self._cursors: dict[Any, OrderedDict[bytes, _RawCursor]] = {}
        self.event_reader: EventReader | None = None

    # ---- capabilities -------------------------------------------------------------------------------------
    async def setup(self) -> None:
        caps = {
            ua.ObjectIds.HistoryServerCapabilities_AccessHistoryDataCapability: True,
            ua.ObjectIds.HistoryServerCapabilities_AccessHistoryEventsCapability: self.event_reader is not None,
            ua.ObjectIds.HistoryServerCapabilities_InsertDataCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_ReplaceDataCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_UpdateDataCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_DeleteRawCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_DeleteAtTimeCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_InsertEventCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_ReplaceEventCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_UpdateEventCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_DeleteEventCapability: False,
            ua.ObjectIds.HistoryServerCapabilities_InsertAnnotationCapability: False,
        }
        for ident, value in caps.items():
            await self._set(ident, ua.Variant(value, ua.VariantType.Boolean))
        await self._set(ua.ObjectIds.HistoryServerCapabilities_MaxReturnDataValues,
                        ua.Variant(0, ua.VariantType.UInt32))
        await self._set(ua.ObjectIds.HistoryServerCapabilities_MaxReturnEventValues,
                        ua.Variant(0, ua.VariantType.UInt32))
        for folder in (ua.ObjectIds.HistoryServerCapabilities_AggregateFunctions,
                       ua.ObjectIds.Server_ServerCapabilities_AggregateFunctions):
            node = self._server.get_node(ua.NodeId(folder))
            have = {r.NodeId for r in await node.get_references(ua.ObjectIds.Organizes)}
            for ident in AGGREGATES:
                if ua.NodeId(ident) not in have:
                    await node.add_reference(ua.NodeId(ident), ua.ObjectIds.Organizes, forward=True, bidirectional=False)

    async def _set(self, ident: int, variant: ua.Variant) -> None:
        node_id = ua.NodeId(ident)
        if node_id in self._server.iserver.aspace:
            await self._server.write_attribute_value(node_id, ua.DataValue(variant))

    # ---- sessions -----------------------------------------------------------------------------------------
    def release(self, session: InternalSession) -> None:
        self._cursors.pop(session.session_id, None)

    def _store(self, session: InternalSession, cursor: _RawCursor) -> bytes:
        points = self._cursors.setdefault(session.session_id, OrderedDict())
        while len(points) >= self._config.max_continuation_points:
            points.popitem(last=False)
        key = os.urandom(16)
        points[key] = cursor
        return key

    def _take(self, session: InternalSession, cp: bytes) -> _RawCursor | None:
        return self._cursors.get(session.session_id, OrderedDict()).pop(bytes(cp), None)

    # ---- the service --------------------------------------------------------------------------------------
    async def read(self, session: InternalSession, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        nodes = list(params.NodesToRead)
        if params.ReleaseContinuationPoints:
            for n in nodes:
                if n.ContinuationPoint:
                    self._take(session, n.ContinuationPoint)
            return [_result(S.Good) for _ in nodes]
        if isinstance(details, ua.ReadEventDetails):
            if self.event_reader is None:
                return [_result(S.BadHistoryOperationUnsupported) for _ in nodes]
            return list(await asyncio.gather(*(self.event_reader(session, n, details) for n in nodes)))
        if params.TimestampsToReturn == ua.TimestampsToReturn.Neither or params.TimestampsToReturn > 3:
            return [_result(S.BadTimestampsToReturnInvalid) for _ in nodes]
        role = role_of(session.user)

        async def one(i: int, node: ua.HistoryReadValueId) -> ua.HistoryReadResult:
            tag = self._directory.tag_for(node.NodeId)
            if tag is None:
                known = node.NodeId in self._server.iserver.aspace
                return _result(S.BadHistoryOperationUnsupported if known else S.BadNodeIdUnknown)
            if role is None:
                return _result(S.BadUserAccessDenied)
            if not tag.archived:
                return _result(S.BadHistoryOperationUnsupported)
            if node.IndexRange:
                return _result(S.BadIndexRangeInvalid)
            async with self._gate:
                try:
                    if isinstance(details, ua.ReadRawModifiedDetails):
                        return await self._raw(session, tag, details, node.ContinuationPoint)
                    if isinstance(details, ua.ReadProcessedDetails):
                        agg = details.AggregateType[i] if i < len(details.AggregateType) else None
                        return await self._processed(tag, details, agg)
                    if isinstance(details, ua.ReadAtTimeDetails):
                        return await self._at_time(tag, details)
                    return _result(S.BadHistoryOperationInvalid)
                except WinCCError as exc:
                    log.warning("archive read of %s failed: %s", tag.name, exc)
                    return _result(S.BadCommunicationError)

        return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(nodes))))

    # ---- values -------------------------------------------------------------------------------------------
    def _dv(self, tag: TagInfo, v: ArchiveValue) -> ua.DataValue:
        try:
            variant = ua.Variant(from_wincc(tag.data_type, v.value), VARIANT_TYPES[tag.data_type])
            status = quality_to_status(v.quality)
        except (ValueError, TypeError):
            variant, status = ua.Variant(None, ua.VariantType.Null), ua.StatusCode(S.BadTypeMismatch)
        return ua.DataValue(variant, StatusCode=status, SourceTimestamp=v.timestamp, ServerTimestamp=v.timestamp)

    async def _before(self, tag: TagInfo, t: datetime) -> ArchiveValue | None:
        """The last archived value strictly before t, looking back in growing windows."""
        for window in _BOUND_WINDOWS:
            last = None
            async for page in self._client.archive(tag, t - window, t, self._config.page_size):
                for v in page:
                    if v.timestamp < t:
                        last = v
            if last is not None:
                return last
        return None

    async def _after(self, tag: TagInfo, t: datetime) -> ArchiveValue | None:
        """The first archived value strictly after t."""
        for window in _BOUND_WINDOWS:
            async for page in self._client.archive(tag, t, t + window, self._config.page_size):
                for v in page:
                    if v.timestamp > t:
                        return v
        return None

    # ---- raw ----------------------------------------------------------------------------------------------
    async def _raw(self, session: InternalSession, tag: TagInfo, d: ua.ReadRawModifiedDetails,
                   cp: bytes | None) -> ua.HistoryReadResult:
        if d.IsReadModified:
            return _result(S.BadHistoryOperationUnsupported)
        if cp:
            cursor = self._take(session, cp)
            if cursor is None:
                return _result(S.BadContinuationPointInvalid)
            values: list[ua.DataValue] = []
        else:
            start, end = _utc(d.StartTime), _utc(d.EndTime)
            limit = int(d.NumValuesPerNode or 0)
            if start is None and end is None or (start is None or end is None) and limit == 0:
                return _result(S.BadInvalidTimestampArgument)
            if start is None:  # only an end time: the newest values before it, newest first
                start, end = end, None
                reverse = True
            else:
                reverse = end is not None and start > end
            cursor = _RawCursor(tag, end, reverse, limit, bool(d.ReturnBounds), start, 0)
            values = await self._start_bound(tag, cursor, start) if cursor.bounds else []
        more = await (self._raw_reverse(cursor, values) if cursor.reverse else self._raw_forward(cursor, values))
        if more:
            return _result(S.Good, values, self._store(session, cursor))
        if cursor.bounds and cursor.end is not None:
            values.append(await self._end_bound(tag, cursor))
        return _result(S.Good if values else S.GoodNoData, values)

    async def _start_bound(self, tag: TagInfo, cursor: _RawCursor, start: datetime) -> list[ua.DataValue]:
        # a value exactly at the start time is its own bound and comes with the data
        probe = [v async for page in self._client.archive(tag, start, start, 1) for v in page]
        if probe:
            return []
        bound = await (self._after(tag, start) if cursor.reverse else self._before(tag, start))
        if bound is None:
            return [ua.DataValue(StatusCode=ua.StatusCode(S.BadBoundNotFound), SourceTimestamp=start,
                                 ServerTimestamp=start)]
        return [self._dv(tag, bound)]

    async def _end_bound(self, tag: TagInfo, cursor: _RawCursor) -> ua.DataValue:
        assert cursor.end is not None
        bound = await (self._before(tag, cursor.end) if cursor.reverse else self._after(tag, cursor.end))
        if bound is None:
            return ua.DataValue(StatusCode=ua.StatusCode(S.BadBoundNotFound), SourceTimestamp=cursor.end,
                                ServerTimestamp=cursor.end)
        return self._dv(tag, bound)

    def _advance(self, cursor: _RawCursor, v: ArchiveValue) -> None:
        if v.timestamp == cursor.at:
            cursor.skip += 1
        else:
            cursor.at, cursor.skip = v.timestamp, 1

    async def _raw_forward(self, cursor: _RawCursor, values: list[ua.DataValue]) -> bool:
        end = cursor.end or datetime.now(UTC)
        skip = cursor.skip
        resume_at = cursor.at
        async for page in self._client.archive(cursor.tag, resume_at, end, self._config.page_size):
            for v in page:
                if v.timestamp == resume_at and skip > 0:
                    skip -= 1
                    continue
                if cursor.limit and len(values) >= cursor.limit:
                    return True  # there is at least one more value: hand out a continuation point
                values.append(self._dv(cursor.tag, v))
                self._advance(cursor, v)
        return False

    async def _raw_reverse(self, cursor: _RawCursor, values: list[ua.DataValue]) -> bool:
        floor = cursor.end or datetime(1970, 1, 1, tzinfo=UTC)
        hi, skip, resume_at = cursor.at, cursor.skip, cursor.at
        window = timedelta(hours=1)
        seen_below: datetime | None = None  # values at or above this were covered by an earlier window
        while hi >= floor:
            lo = max(floor, hi - window)
            chunk = [v async for page in self._client.archive(cursor.tag, lo, hi, self._config.page_size)
                     for v in page if seen_below is None or v.timestamp < seen_below]
            chunk.sort(key=lambda v: v.timestamp, reverse=True)
            for v in chunk:
                if v.timestamp == resume_at and skip > 0:
                    skip -= 1
                    continue
                if cursor.limit and len(values) >= cursor.limit:
                    return True
                values.append(self._dv(cursor.tag, v))
                self._advance(cursor, v)
            if lo <= floor:
                return False
            seen_below, hi = lo, lo
            window *= 2
        return False

    # ---- samples for aggregates and at-time ---------------------------------------------------------------
    async def _samples(self, tag: TagInfo, start: datetime, end: datetime) -> list[Sample]:
        raw: list[ArchiveValue] = []
        before = await self._before(tag, start)
        if before is not None:
            raw.append(before)
        async for page in self._client.archive(tag, start, end, self._config.page_size):
            raw.extend(page)
        after = await self._after(tag, end)
        if after is not None and (not raw or after.timestamp > raw[-1].timestamp):
            raw.append(after)
        out = []
        for v in raw:
            try:
                value = float(from_wincc(tag.data_type, v.value))
            except (ValueError, TypeError):
                continue
            out.append(Sample(v.timestamp, value, (v.quality & 0xFF) >= 0x80))
        return out

    async def _processed(self, tag: TagInfo, d: ua.ReadProcessedDetails, aggregate: ua.NodeId | None
                         ) -> ua.HistoryReadResult:
        start, end = _utc(d.StartTime), _utc(d.EndTime)
        if start is None or end is None:
            return _result(S.BadInvalidTimestampArgument)
        if aggregate is None or aggregate.NamespaceIndex != 0 or aggregate.Identifier not in AGGREGATES:
            return _result(S.BadAggregateNotSupported)
        if tag.data_type not in _NUMERIC:
            return _result(S.BadAggregateInvalidInputs)
        reverse = start > end
        lo, hi = (end, start) if reverse else (start, end)
        samples = await self._samples(tag, lo, hi)
        values = compute(aggregate.Identifier, samples, lo, hi, float(d.ProcessingInterval or 0))
        if reverse:
            values.reverse()
        return _result(S.Good, values)

    async def _at_time(self, tag: TagInfo, d: ua.ReadAtTimeDetails) -> ua.HistoryReadResult:
        times = [_utc(t) for t in d.ReqTimes]
        if not times or any(t is None for t in times):
            return _result(S.BadInvalidTimestampArgument)
        samples = await self._samples(tag, min(times), max(times))  # type: ignore[type-var]
        good = [s for s in samples if s.good]
        out = []
        for t in times:
            assert t is not None
            value, interpolated = interpolate(good, t)
            if value is None:
                out.append(ua.DataValue(StatusCode=ua.StatusCode(S.BadNoData), SourceTimestamp=t, ServerTimestamp=t))
                continue
            vt = VARIANT_TYPES[tag.data_type] if not interpolated else ua.VariantType.Double
            if not interpolated:
                value = from_wincc(tag.data_type, value)
            code = (S.Good | 0x400 | _INTERPOLATED_BIT) if interpolated else S.Good
            out.append(ua.DataValue(ua.Variant(value, vt), StatusCode=ua.StatusCode(code), SourceTimestamp=t,
                                    ServerTimestamp=t))
        return _result(S.Good, out)
