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

This module is the service (rights, per-node dispatch, work budget, capabilities); raw reads are in raw.py,
processed and at-time reads in processed.py, the archive walks they share in archive.py, continuation points in
continuation.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from asyncua import Server, ua

from bridge.config import HistoryConfig
from bridge.opcua._asyncua import InternalSession, address_space
from bridge.opcua.history.aggregates import AGGREGATES, AggregateSettings
from bridge.opcua.history.archive import Archive, result
from bridge.opcua.history.budget import TooMuchWork, Work, current_work
from bridge.opcua.history.continuation import ContinuationPoints
from bridge.opcua.history.processed import ProcessedReads
from bridge.opcua.history.raw import RawReads
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.security.users import role_of
from bridge.wincc.client import WinCCClient
from bridge.wincc.errors import WinCCError

__all__ = ["HistoryService"]

log = logging.getLogger(__name__)
S = ua.StatusCodes
O = ua.ObjectIds

# ReadEvent requests (and releasing their continuation points) go whole to the event reader (history/events.py)
EventReader = Callable[[InternalSession, ua.HistoryReadParameters], Awaitable[list[ua.HistoryReadResult]]]


class HistoryService:
    def __init__(self, server: Server, directory: TagDirectory, client: WinCCClient, config: HistoryConfig) -> None:
        self._server = server
        self._directory = directory
        self._config = config
        self._gate = asyncio.Semaphore(config.max_concurrency)
        self._points = ContinuationPoints(config.max_continuation_points)
        a = config.aggregates
        self._defaults = AggregateSettings(
            a.treat_uncertain_as_bad, a.percent_data_bad, a.percent_data_good, a.use_sloped_extrapolation
        )
        archive = Archive(client, config.page_size)
        self._raw = RawReads(archive, self._points, config.max_values_per_read)
        self._processed = ProcessedReads(archive, self._points, config.max_values_per_read, self._defaults)
        self.event_reader: EventReader | None = None

    # ---- capabilities -------------------------------------------------------------------------------------
    async def setup(self) -> None:
        defaults = self._defaults
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
            O.DefaultHAConfiguration_AggregateConfiguration_TreatUncertainAsBad: defaults.treat_uncertain_as_bad,
            O.DefaultHAConfiguration_AggregateConfiguration_UseSlopedExtrapolation: defaults.use_sloped_extrapolation,
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
        self._points.release(session)

    # ---- the service --------------------------------------------------------------------------------------
    async def read(self, session: InternalSession, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        nodes = list(params.NodesToRead)
        if isinstance(details, ua.ReadEventDetails):
            if self.event_reader is None:
                return [result(S.BadHistoryOperationUnsupported) for _ in nodes]
            return await self.event_reader(session, params)
        if params.ReleaseContinuationPoints:
            for n in nodes:
                if n.ContinuationPoint:
                    self._points.take(session, n.ContinuationPoint)
            return [result(S.Good) for _ in nodes]
        if params.TimestampsToReturn == ua.TimestampsToReturn.Neither or params.TimestampsToReturn > 3:
            return [result(S.BadTimestampsToReturnInvalid) for _ in nodes]
        role = role_of(session.user)
        deadline = time.monotonic() + self._config.max_read_s  # one time budget for all nodes of the request

        async def one(i: int, node: ua.HistoryReadValueId) -> ua.HistoryReadResult:
            tag = self._directory.tag_for(node.NodeId)
            if tag is None:
                known = node.NodeId in address_space(self._server)
                return result(S.BadHistoryOperationUnsupported if known else S.BadNodeIdUnknown)
            if role is None:
                return result(S.BadUserAccessDenied)
            if not tag.archived:
                return result(S.BadHistoryOperationUnsupported)
            if node.IndexRange:
                return result(S.BadIndexRangeInvalid)
            async with self._gate:
                current_work.set(self._new_work(deadline))
                try:
                    if isinstance(details, ua.ReadRawModifiedDetails):
                        return await self._raw.read(session, tag, details, node.ContinuationPoint)
                    if isinstance(details, ua.ReadProcessedDetails):
                        agg = details.AggregateType[i] if i < len(details.AggregateType) else None
                        return await self._processed.read(session, tag, details, agg, node.ContinuationPoint)
                    if isinstance(details, ua.ReadAtTimeDetails):
                        return await self._processed.at_time(tag, details)
                    return result(S.BadHistoryOperationInvalid)
                except WinCCError as exc:
                    log.warning("archive read of %s failed: %s", tag.name, exc)
                    return result(S.BadCommunicationError)
                except TooMuchWork:
                    log.warning(
                        "history read of %s refused: more than %d archive requests or %.0f s for one answer",
                        tag.name,
                        self._new_work(0).hard,
                        2 * self._config.max_read_s,
                    )
                    return result(S.BadTooManyOperations)
                except Exception:  # a bug must cost this node its answer, not the whole request
                    log.exception("history read of %s failed", tag.name)
                    return result(S.BadInternalError)

        return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(nodes))))

    def _new_work(self, deadline: float) -> Work:
        cfg = self._config
        # past the budget a read still finishes the window it is in: a reverse window that turns out too dense
        # is read again narrower, each attempt up to max_values_per_read / page_size + 1 requests; three allowed
        window = cfg.max_values_per_read // cfg.page_size + 2
        return Work(cfg.max_requests_per_read, 2 * cfg.max_requests_per_read + 3 * window, cfg.max_read_s, deadline)
