"""The condition methods: Acknowledge, AddComment, ConditionRefresh, ConditionRefresh2 (and Enable/Disable).

The Call service (bridge/opcua/services/calls.py) has already checked the session's role (a reader may refresh,
only an operator or admin may acknowledge or comment) and hands the calls this router claims to `call` with the
session, which asyncua's method callbacks never see.

Acknowledge(EventId, Comment), as i=9111 on the condition or through the condition's own method node:
- Good: WinCC confirmed the acknowledge (sent with the UA user's name and the comment); the condition is acked,
  Comment and ClientUserId are set and an event says so (Retain false if the alarm had gone: then it is forgotten);
- BadEventIdUnknown: the EventId was not issued for this condition in its current cycle (unknown or stale), or
  WinCC does not know the alarm (404);
- BadConditionBranchAlreadyAcked: already acknowledged here, or WinCC answers 409;
- BadNotSupported: restservice without `wincc.acknowledge`;
- BadTimeout / BadCommunicationError: WinCC did not answer in `wincc.timeouts.write_s` / failed. Never retried.
AddComment(EventId, Comment): stored on the condition (WinCC has no comment call), one event with the new Comment.
Each acknowledge and comment is logged like a write (logger `bridge.audit.write`: user, alarm id, comment, result)
and emitted as AuditConditionAcknowledgeEventType / AuditConditionCommentEventType on the Server object.
ConditionRefresh(SubscriptionId) / ConditionRefresh2(SubscriptionId, MonitoredItemId): RefreshStartEvent, the last
event of every retained condition, RefreshEndEvent, to that subscription (or that one item) only; a subscription
of another session is BadSubscriptionIdInvalid.
Enable answers BadConditionAlreadyEnabled and Disable BadNotSupported: WinCC's alarms cannot be disabled over REST.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asyncua import ua

from bridge.opcua.alarms.delivery import deliver_event, event_items, has_event_item, subscription_of
from bridge.opcua.alarms.events import EventRecord, matches, select
from bridge.opcua.alarms.nodes import CHILD_SUFFIXES
from bridge.opcua.alarms.records import refresh_record
from bridge.opcua.alarms.service import AlarmService
from bridge.opcua.alarms.state import Condition
from bridge.opcua.security.users import BridgeUser
from bridge.opcua.services.audit import AuditEvents
from bridge.wincc.errors import WinCCError, WinCCForbidden, WinCCNotFound, WinCCRejected, WinCCTimeout

__all__ = ["ConditionMethods"]

audit_log = logging.getLogger("bridge.audit.write")
log = logging.getLogger(__name__)
O = ua.ObjectIds
S = ua.StatusCodes
_ACK, _COMMENT = O.AcknowledgeableConditionType_Acknowledge, O.ConditionType_AddComment
_REFRESH, _REFRESH2 = O.ConditionType_ConditionRefresh, O.ConditionType_ConditionRefresh2
_ENABLE, _DISABLE = O.ConditionType_Enable, O.ConditionType_Disable
_STANDARD = {_ACK, _COMMENT, _REFRESH, _REFRESH2, _ENABLE, _DISABLE}
_INSTANCE = {"Acknowledge": _ACK, "AddComment": _COMMENT}


def _always(_record: EventRecord, _where: object) -> bool:
    """Refresh markers pass every where clause: a client filtering on its alarm types must still see where the
    replay begins and ends (node-opcua and UaExpert wait for RefreshEndEvent)."""
    return True


def _result(code: int, inputs: int = 0, arg_results: list[ua.StatusCode] | None = None) -> ua.CallMethodResult:
    return ua.CallMethodResult(
        StatusCode=ua.StatusCode(code), InputArgumentResults=arg_results or [ua.StatusCode() for _ in range(inputs)]
    )


class ConditionMethods:
    def __init__(self, alarms: AlarmService, timeout_s: float, audit: AuditEvents | None = None) -> None:
        """`audit` emits the audit events (bridge/opcua/services/audit.py); None: the log line only."""
        self._alarms = alarms
        self._timeout_s = timeout_s
        self._audit = audit
        self._locks: dict[str, asyncio.Lock] = {}
        self.acknowledges: dict[str, int] = {}  # StatusCode name -> count (Prometheus)

    def method_of(self, request: ua.CallMethodRequest) -> int | None:
        """The standard method a call means (an instance's own method node counts as its type's), else None."""
        mid = request.MethodId
        if mid.NamespaceIndex == 0 and mid.Identifier in _STANDARD:
            return int(mid.Identifier)
        if mid.NamespaceIndex == self._alarms.ns and isinstance(mid.Identifier, str):
            alarm_id, _, name = mid.Identifier.rpartition("#")
            if name in _INSTANCE and request.ObjectId == self._alarms.condition_id(alarm_id):
                return _INSTANCE[name]
        return None

    def claims(self, request: ua.CallMethodRequest) -> bool:
        return self.method_of(request) is not None

    async def call(self, session: Any, request: ua.CallMethodRequest) -> ua.CallMethodResult:
        method = self.method_of(request)
        args = list(request.InputArguments or [])
        try:
            if method in (_REFRESH, _REFRESH2):
                return await self._refresh(session, args, method == _REFRESH2)
            if method in (_ACK, _COMMENT):
                return await self._ack_or_comment(session, request, args, method == _ACK)
            if method == _ENABLE:
                return _result(S.BadConditionAlreadyEnabled)
            return _result(S.BadNotSupported)
        except Exception:  # a bug must cost this call its answer, never the session
            log.exception("condition method %s failed", request.MethodId)
            return _result(S.BadInternalError)

    async def refused(self, session: Any, request: ua.CallMethodRequest) -> None:
        """The Call service refused an Acknowledge or AddComment for the session's role: audited like any other."""
        method = self.method_of(request)
        if method not in (_ACK, _COMMENT):
            return
        args = [a.Value if isinstance(a, ua.Variant) else a for a in (request.InputArguments or [])]
        event_id = args[0] if args and isinstance(args[0], bytes) else b""
        comment = args[1] if len(args) > 1 else None
        text = (comment.Text if isinstance(comment, ua.LocalizedText) else comment) or ""
        user = session.user.label if isinstance(session.user, BridgeUser) else "unknown"
        alarm_id = self._alarm_of(request.ObjectId) or str(request.ObjectId)
        await self._done(
            "acknowledge" if method == _ACK else "comment",
            user,
            request,
            alarm_id,
            text if isinstance(text, str) else "",
            event_id,
            S.BadUserAccessDenied,
        )

    # ---- ConditionRefresh --------------------------------------------------------------------------------------
    async def _refresh(self, session: Any, args: list[Any], per_item: bool) -> ua.CallMethodResult:
        want = 2 if per_item else 1
        if len(args) < want:
            return _result(S.BadArgumentsMissing)
        if len(args) > want:
            return _result(S.BadTooManyArguments)
        values = [a.Value if isinstance(a, ua.Variant) else a for a in args]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return _result(S.BadInvalidArgument, arg_results=[ua.StatusCode(S.BadTypeMismatch)] * want)
        sub_id, mid = values[0], (values[1] if per_item else None)
        sub = subscription_of(self._alarms.server, sub_id)
        if sub is None or sub.session_id != session.session_id:
            return _result(S.BadSubscriptionIdInvalid, want)
        if mid is not None and not has_event_item(self._alarms.server, sub_id, mid):
            return _result(S.BadMonitoredItemIdInvalid, want)
        alarms = self._alarms
        markers = event_items(alarms.server, None, sub_id, mid)
        await deliver_event(markers, select, _always, refresh_record(O.RefreshStartEventType), unbounded=True)
        by_node: dict[ua.NodeId, list[Any]] = {}
        for item in markers:
            by_node.setdefault(item.node, []).append(item)
        for n, (alarm_id, record) in enumerate(list(alarms.records.items())):
            source = alarms.sources.get(alarm_id)
            cond = alarms.book.get(alarm_id)
            if source is None or cond is None or not cond.retain:
                continue
            items = [item for node in source.chain for item in by_node.get(node, ())]
            alarms.events_sent += await deliver_event(items, select, matches, record, unbounded=True)
            if n % 1000 == 999:
                await asyncio.sleep(0)
        await deliver_event(markers, select, _always, refresh_record(O.RefreshEndEventType), unbounded=True)
        return _result(S.Good, want)

    # ---- Acknowledge / AddComment ------------------------------------------------------------------------------
    async def _ack_or_comment(
        self, session: Any, request: ua.CallMethodRequest, args: list[Any], acknowledge: bool
    ) -> ua.CallMethodResult:
        if len(args) < 2:
            return _result(S.BadArgumentsMissing)
        if len(args) > 2:
            return _result(S.BadTooManyArguments)
        event_id, comment = (a.Value if isinstance(a, ua.Variant) else a for a in args)
        bad = [
            ua.StatusCode(S.Good if ok else S.BadTypeMismatch)
            for ok in (isinstance(event_id, bytes), isinstance(comment, (ua.LocalizedText, str)) or comment is None)
        ]
        if not all(b.is_good() for b in bad):
            return _result(S.BadInvalidArgument, arg_results=bad)
        text = (comment.Text if isinstance(comment, ua.LocalizedText) else comment) or ""
        user = session.user.label if isinstance(session.user, BridgeUser) else "unknown"
        alarms = self._alarms
        alarm_id = self._alarm_of(request.ObjectId)
        cond = alarms.book.get(alarm_id) if alarm_id is not None else None
        what = "acknowledge" if acknowledge else "comment"
        if cond is None:
            code = S.BadNodeIdUnknown if request.ObjectId not in alarms.server.iserver.aspace else S.BadMethodInvalid
            if alarm_id is not None:
                code = S.BadEventIdUnknown  # a condition that was forgotten: its events are stale
            return await self._done(what, user, request, alarm_id or str(request.ObjectId), text, bytes(event_id), code)
        lock = self._locks.setdefault(cond.alarm_id, asyncio.Lock())
        async with lock:
            code = await (
                self._acknowledge(cond, bytes(event_id), text, user)
                if acknowledge
                else self._comment(cond, bytes(event_id), text, user)
            )
        if not lock.locked():
            self._locks.pop(cond.alarm_id, None)
        return await self._done(what, user, request, cond.alarm_id, text, bytes(event_id), code)

    def _alarm_of(self, object_id: ua.NodeId) -> str | None:
        """The alarm id of a condition's NodeId (None for anything else, e.g. one of its children: alarm ids may
        contain "#" themselves, as Unified's `<name>#<instance>` do, so a child is told by its known suffix)."""
        if object_id.NamespaceIndex != self._alarms.ns or not isinstance(object_id.Identifier, str):
            return None
        _, _, suffix = object_id.Identifier.rpartition("#")
        return None if suffix in CHILD_SUFFIXES else object_id.Identifier

    async def _acknowledge(self, cond: Condition, event_id: bytes, comment: str, user: str) -> int:
        alarms = self._alarms
        if alarms.book.get(cond.alarm_id) is not cond or event_id not in cond.cycle_event_ids:
            return S.BadEventIdUnknown
        if cond.acked:
            return S.BadConditionBranchAlreadyAcked
        try:
            await asyncio.wait_for(alarms.client.acknowledge(cond.alarm_id, comment, user), self._timeout_s)
        except NotImplementedError:
            return S.BadNotSupported
        except (TimeoutError, WinCCTimeout):
            return S.BadTimeout
        except WinCCRejected as exc:
            return S.BadConditionBranchAlreadyAcked if exc.status == 409 else S.BadInvalidArgument
        except WinCCNotFound:
            return S.BadEventIdUnknown
        except WinCCForbidden:
            return S.BadUserAccessDenied
        except WinCCError:
            return S.BadCommunicationError
        alarms.generation += 1
        if alarms.book.get(cond.alarm_id) is cond and not cond.acked:
            await alarms.apply([alarms.book.acknowledged(cond, comment, user)])
        return S.Good

    async def _comment(self, cond: Condition, event_id: bytes, comment: str, user: str) -> int:
        alarms = self._alarms
        if alarms.book.get(cond.alarm_id) is not cond or event_id not in cond.cycle_event_ids:
            return S.BadEventIdUnknown
        alarms.generation += 1
        await alarms.apply([alarms.book.commented(cond, comment, user)])
        return S.Good

    async def _done(
        self,
        what: str,
        user: str,
        request: ua.CallMethodRequest,
        alarm_id: str,
        comment: str,
        event_id: bytes,
        code: int,
    ) -> ua.CallMethodResult:
        status = ua.StatusCode(code)
        audit_log.info("%s user=%s alarm=%r comment=%r result=%s", what, user, alarm_id, comment, status.name)
        if what == "acknowledge":
            self.acknowledges[status.name] = self.acknowledges.get(status.name, 0) + 1
        if self._audit is not None:
            acknowledge = what == "acknowledge"
            method = "Acknowledge" if acknowledge else "AddComment"
            await self._audit.emit(
                O.AuditConditionAcknowledgeEventType if acknowledge else O.AuditConditionCommentEventType,
                user=user,
                status=status.is_good(),
                source_node=request.ObjectId,
                source_name=f"Method/{method}",
                message=f"{method} {alarm_id}: {status.name}",
                severity=100 if status.is_good() else 500,
                ConditionEventId=ua.Variant(event_id, ua.VariantType.ByteString),
                Comment=ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText),
                MethodId=ua.Variant(request.MethodId, ua.VariantType.NodeId),
                InputArguments=ua.Variant(
                    [
                        ua.Variant(event_id, ua.VariantType.ByteString),
                        ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText),
                    ],
                    ua.VariantType.Variant,
                    is_array=True,
                ),
            )
        return _result(code, 2)
