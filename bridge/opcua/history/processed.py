"""Processed (Part 13 aggregates over intervals, see aggregates.py) and at-time HistoryRead: the archive streamed
through the aggregate engines, with the values just outside the range that serve as bounds."""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime

from asyncua import ua

from bridge.opcua._asyncua import InternalSession
from bridge.opcua.history.aggregates import (
    AGGREGATES,
    AggregateSettings,
    AtTimeEngine,
    IntervalEngine,
    IntervalPlan,
    Slot,
)
from bridge.opcua.history.archive import Archive, distinct, result, sample, utc
from bridge.opcua.history.budget import out_of_budget
from bridge.opcua.history.continuation import ContinuationPoints
from bridge.opcua.model.types import VARIANT_TYPES, from_wincc
from bridge.wincc.models import ArchiveValue, DataType, TagInfo

__all__ = ["ProcessedReads"]

# the logger name these lines always had (operators' log filters know them by it)
log = logging.getLogger("bridge.opcua.history.service")
S = ua.StatusCodes
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


@dataclass
class _ProcessedCursor:
    tag: TagInfo
    aggregate: int
    plan: IntervalPlan
    settings: AggregateSettings
    next: int = 0  # the next interval (request order)


class ProcessedReads:
    """ReadProcessed (with continuation points in `points`) and ReadAtTime of archived tags."""

    def __init__(
        self, archive: Archive, points: ContinuationPoints, max_values_per_read: int, defaults: AggregateSettings
    ) -> None:
        self._archive = archive
        self._points = points
        self._max_values = max_values_per_read
        self._defaults = defaults

    async def read(
        self,
        session: InternalSession,
        tag: TagInfo,
        d: ua.ReadProcessedDetails,
        aggregate: ua.NodeId | None,
        cp: bytes | None,
    ) -> ua.HistoryReadResult:
        if cp:
            cursor = self._points.take(session, cp)
            if not isinstance(cursor, _ProcessedCursor) or cursor.tag.name != tag.name:
                return result(S.BadContinuationPointInvalid)
        else:
            start, end = utc(d.StartTime), utc(d.EndTime)
            if start is None or end is None:
                return result(S.BadInvalidTimestampArgument)
            if aggregate is None or aggregate.NamespaceIndex != 0 or aggregate.Identifier not in AGGREGATES:
                return result(S.BadAggregateNotSupported)
            if tag.data_type not in _NUMERIC:
                return result(S.BadAggregateInvalidInputs)
            settings = self._settings_for(d.AggregateConfiguration)
            if settings is None:
                return result(S.BadAggregateConfigurationRejected)
            interval = float(d.ProcessingInterval or 0)
            if start == end or interval < 0 or not math.isfinite(interval):
                return result(S.BadInvalidArgument)  # Part 13 5.4.2.2 Table 12
            cursor = _ProcessedCursor(tag, int(aggregate.Identifier), IntervalPlan(start, end, interval), settings)
        plan = cursor.plan
        if out_of_budget():  # the request's time went to its other nodes: nothing done here yet, come back
            return result(S.Good, [], self._points.store(session, cursor))
        count = min(self._max_values, plan.count - cursor.next)
        values = await self._aggregate(
            tag, cursor.aggregate, plan.slots(cursor.next, count), cursor.settings, may_stop=not plan.reverse
        )
        if plan.reverse:
            values.reverse()  # computed oldest first; the request wants them from StartTime backwards
        cursor.next += len(values)
        more = cursor.next < plan.count
        return result(S.Good, values, self._points.store(session, cursor) if more else None)

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

    async def _aggregate(
        self, tag: TagInfo, aggregate: int, slots: list[Slot], settings: AggregateSettings, may_stop: bool = False
    ) -> list[ua.DataValue]:
        """Stream the archive over `slots` (time order) through the aggregate engine: the values before the first
        interval that serve as its bounds, every value inside, the first ones after the last. With `may_stop`,
        running out of work budget answers the first intervals finished so far (at least one)."""
        engine = IntervalEngine(aggregate, slots, settings)
        lo, hi = slots[0].t0, slots[-1].t1

        def usable(v: ArchiveValue) -> bool:
            return settings.usable(sample(tag, v))

        for v in distinct(*await self._archive.scan_back(tag, lo, inclusive=False, usable=usable))[::-1]:
            engine.feed(sample(tag, v))
        out: list[ua.DataValue] = []
        async with aclosing(self._archive.pages(tag, lo, hi)) as pages:
            async for page in pages:
                for v in page:
                    engine.feed(sample(tag, v))
                out.extend(engine.drain())
                if may_stop and out and out_of_budget():
                    return out
                await asyncio.sleep(0)  # a long range is many pages: let the server answer others in between
        if engine.waiting:
            for v in distinct(*await self._archive.scan_forward(tag, hi, inclusive=False, usable=usable)):
                engine.feed(sample(tag, v))
        out.extend(engine.finish())
        if engine.ignored:
            log.warning("archive of %s answered %d values out of time order; ignored", tag.name, engine.ignored)
        return out

    async def at_time(self, tag: TagInfo, d: ua.ReadAtTimeDetails) -> ua.HistoryReadResult:
        times = [utc(t) for t in d.ReqTimes]
        if not times or any(t is None for t in times):
            return result(S.BadInvalidTimestampArgument)
        req: list[datetime] = [t for t in times if t is not None]
        settings = self._defaults
        engine = AtTimeEngine(req, bool(d.UseSimpleBounds), settings)
        lo, hi = min(req), max(req)

        def usable(v: ArchiveValue) -> bool:
            return settings.usable(sample(tag, v))

        for v in distinct(*await self._archive.scan_back(tag, lo, inclusive=False, usable=usable))[::-1]:
            engine.feed(sample(tag, v))
        async with aclosing(self._archive.pages(tag, lo, hi)) as pages:
            async for page in pages:
                for v in page:
                    engine.feed(sample(tag, v))
                await asyncio.sleep(0)
        for v in distinct(*await self._archive.scan_forward(tag, hi, inclusive=False, usable=usable)):
            engine.feed(sample(tag, v))
        out = engine.finish()
        vt = VARIANT_TYPES[tag.data_type]
        for dv in out:
            if dv.Value is not None and dv.Value.Value is not None and dv.StatusCode.value & 0x3 == 0:
                try:  # a raw value keeps the tag's type (Part 11 6.5.5.2: Raw bit)
                    dv.Value = ua.Variant(from_wincc(tag.data_type, dv.Value.Value), vt)
                except (ValueError, TypeError):
                    pass
        return result(S.Good, out)
