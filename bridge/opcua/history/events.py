"""HistoryReadEvent: WinCC's alarm log (dp `/api/alerts/history`, restservice `ShortTermArchive`) as events.

- Nodes: the Server object and the WinCC root answer every alarm; a folder the alarms whose tag lies below it; a
  tag its own alarms. Any other node: BadHistoryOperationUnsupported (BadNodeIdUnknown if it does not exist).
- Rights as for Read: a session without a role gets BadUserAccessDenied.
- Time domain (Part 11 6.5.4): [StartTime, EndTime]; StartTime after EndTime reads newest first. A missing
  StartTime or EndTime is open on that side (back to 1970 / up to now). NumValuesPerNode caps the whole answer (0:
  no cap); one answer carries at most `history.max_values_per_read` events, more come with a continuation point.
- Each log entry (one WinCC state change) becomes an AlarmConditionType event of that condition, with its state
  at that time; the EventFilter's select clauses pick the fields and its where clause (bridge/opcua/alarms/
  events.py: OfType, Equals, GreaterThan(OrEqual), LessThan(OrEqual), And, Or, Not, Like, InList, Between, IsNull)
  keeps or drops the entry. A log entry carries no EventId, so each gets a fresh one.
- The log is read in pages of `history.page_size` entries, asking again from the last timestamp and dropping the
  entries already seen; a read collects at most MAX_ENTRIES matching events (the continuation points then hold
  the rest, per session, at most `history.max_continuation_points`, freed on release or when the session ends).
- WinCC failing: BadCommunicationError for that node.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from bridge.config import HistoryConfig
from bridge.opcua.alarms.events import EventRecord, matches, select
from bridge.opcua.alarms.records import Source, history_record
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.security.users import role_of
from bridge.wincc.client import WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Alarm, AlarmState, TagInfo

__all__ = ["MAX_ENTRIES", "EventHistory"]

log = logging.getLogger(__name__)
S = ua.StatusCodes
O = ua.ObjectIds
MAX_ENTRIES = 100_000  # matching events one read collects (a guard, far above any page a client asks for)
_MIN_TIME = datetime(1601, 1, 2, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return None if t <= _MIN_TIME else t


def _answer(
    code: int, events: list[ua.HistoryEventFieldList] | None = None, cp: bytes | None = None
) -> ua.HistoryReadResult:
    return ua.HistoryReadResult(
        StatusCode=ua.StatusCode(code), ContinuationPoint=cp, HistoryData=ua.HistoryEvent(Events=events or [])
    )


@dataclass
class _Rest:
    events: list[ua.HistoryEventFieldList]


class EventHistory:
    """The `event_reader` of the history service. `source_of(tag name or None)` places a log entry."""

    def __init__(
        self,
        directory: TagDirectory,
        client: WinCCClient,
        config: HistoryConfig,
        root: ua.NodeId,
        alarms_ns: int,
        source_of: Callable[[str | None], Source],
    ) -> None:
        self._directory = directory
        self._client = client
        self._config = config
        self._root = root
        self._ns = alarms_ns
        self._source_of = source_of
        self._cursors: dict[Any, OrderedDict[bytes, _Rest]] = {}

    def release(self, session: Any) -> None:
        self._cursors.pop(session.session_id, None)

    async def read(self, session: Any, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        nodes = list(params.NodesToRead)
        points = self._cursors.setdefault(session.session_id, OrderedDict())
        if params.ReleaseContinuationPoints:
            for n in nodes:
                if n.ContinuationPoint:
                    points.pop(bytes(n.ContinuationPoint), None)
            return [_answer(S.Good) for _ in nodes]
        details: ua.ReadEventDetails = params.HistoryReadDetails
        out = []
        for node in nodes:
            try:
                out.append(await self._one(session, node, details, points))
            except WinCCError as exc:
                log.warning("alarm history read failed: %s", exc)
                out.append(_answer(S.BadCommunicationError))
            except Exception:  # a bug must cost this node its answer, not the whole request
                log.exception("alarm history read failed")
                out.append(_answer(S.BadInternalError))
        return out

    def _scope(self, node_id: ua.NodeId, aspace: Any) -> Callable[[TagInfo | None], bool] | None:
        if node_id == ua.NodeId(O.Server) or node_id == self._root:
            return lambda tag: True
        tag = self._directory.tag_for(node_id)
        if tag is not None:
            return lambda t: t is not None and t.name == tag.name
        if node_id.NamespaceIndex == self._directory.folder_ns and node_id in aspace:
            return lambda t: (
                t is not None
                and any(self._directory.folder_node_id(t.folder[:d]) == node_id for d in range(1, len(t.folder) + 1))
            )
        return None

    async def _one(
        self, session: Any, node: ua.HistoryReadValueId, details: ua.ReadEventDetails, points: OrderedDict[bytes, _Rest]
    ) -> ua.HistoryReadResult:
        aspace = session.aspace
        if role_of(session.user) is None:
            return _answer(S.BadUserAccessDenied)
        if node.ContinuationPoint:
            rest = points.pop(bytes(node.ContinuationPoint), None)
            if rest is None:
                return _answer(S.BadContinuationPointInvalid)
            return self._page(rest, points)
        scope = self._scope(node.NodeId, aspace)
        if scope is None:
            return _answer(S.BadHistoryOperationUnsupported if node.NodeId in aspace else S.BadNodeIdUnknown)
        flt = details.Filter if isinstance(details.Filter, ua.EventFilter) else None
        if flt is None or not flt.SelectClauses:
            return _answer(S.BadEventFilterInvalid)
        start, end = _utc(details.StartTime), _utc(details.EndTime)
        reverse = start is not None and end is not None and start > end
        if reverse and start is not None and end is not None:
            lo, hi = end, start
        else:
            lo, hi = start or _EPOCH, end or datetime.now(UTC)
        cap = details.NumValuesPerNode or MAX_ENTRIES
        events: list[ua.HistoryEventFieldList] = []
        async for alarm in self._log(lo, hi):
            tag = self._directory.get(alarm.tag) if alarm.tag else None
            if not scope(tag):
                continue
            record = self._record(alarm)
            if matches(record, flt.WhereClause):
                events.append(ua.HistoryEventFieldList(EventFields=select(record, flt.SelectClauses)))
                if not reverse and len(events) >= cap:
                    break
        if reverse:
            events = events[::-1][:cap]
        return self._page(_Rest(events), points)

    def _page(self, rest: _Rest, points: OrderedDict[bytes, _Rest]) -> ua.HistoryReadResult:
        size = self._config.max_values_per_read
        now, later = rest.events[:size], rest.events[size:]
        if not later:
            return _answer(S.Good, now)
        while len(points) >= self._config.max_continuation_points:
            points.popitem(last=False)
        key = os.urandom(16)
        points[key] = _Rest(later)
        return _answer(S.Good, now, key)

    def _record(self, alarm: Alarm) -> EventRecord:
        source = self._source_of(alarm.tag)
        return history_record(
            alarm.id,
            alarm.text,
            alarm.alarm_class,
            alarm.priority,
            alarm.state is AlarmState.came,
            alarm.acknowledged,
            alarm.timestamp,
            ua.NodeId(alarm.id, self._ns, ua.NodeIdType.String),
            source,
        )

    async def _log(self, lo: datetime, hi: datetime) -> Any:
        """Every log entry in [lo, hi], oldest first, page by page (asking again from the last timestamp)."""
        page = self._config.page_size
        since = lo
        seen_at_since: set[tuple[str, str, bool, datetime]] = set()
        total = 0
        while total < MAX_ENTRIES:
            entries = await self._client.alarm_history(since, hi, limit=page)
            fresh = [a for a in entries if (a.id, a.state, a.acknowledged, a.timestamp) not in seen_at_since]
            for a in fresh:
                yield a
            total += len(fresh)
            if len(entries) < page or not entries:
                return
            last = entries[-1].timestamp
            if last == since and not fresh:
                return  # a page of one timestamp only, all seen: cannot advance
            seen_at_since = {(a.id, a.state, a.acknowledged, a.timestamp) for a in entries if a.timestamp == last}
            if last != since:
                since = last
            else:
                seen_at_since |= {(a.id, a.state, a.acknowledged, a.timestamp) for a in entries}
