"""Browse and BrowseNext with continuation points (OPC UA Part 4 §5.8.2, §5.8.3).

asyncua's Browse ignores RequestedMaxReferencesPerNode and ResultMask and has no BrowseNext, so a folder with
10,000 tags comes back as one huge answer and a client that pages (UaExpert, node-opcua) gets an error. This
service answers from the same address space:

- at most min(RequestedMaxReferencesPerNode, max_references_per_node) references per node and request; a client
  asking for "no limit" (0) gets pages of max_references_per_node (the spec lets a server return fewer and a
  continuation point), so one Browse never has to encode an unbounded answer (measured over TCP with asyncua's
  client: 10,000 references in one answer ~165 ms, a page of 1,000 ~22 ms; a 100,000-child folder in one answer
  would be ~6 MB and could exceed a client's message size limit);
- the rest waits behind a continuation point: the filtered reference list as it was when Browse ran (a consistent
  snapshot even if a re-browse changes the folder meanwhile), per session, random and unguessable;
- BrowseNext returns the next page with a fresh continuation point, or releases them
  (ReleaseContinuationPoints=true); an unknown, used or released one answers BadContinuationPointInvalid;
- at most max_continuation_points per session: a new one frees the oldest one from an earlier request; if all
  of them were made by the current request, that node answers BadNoContinuationPoints (Part 4 §5.8.2.1);
- ResultMask is honoured (fields not asked for are left empty), View must be null (the server has no views).

BrowseNext reaches this service through bridge.opcua._asyncua.browse_next.BrowseNextProcessor (asyncua 2.1 does not
dispatch BrowseNext at all), which also lets whoever may Browse use BrowseNext.
"""

from __future__ import annotations

import itertools
import secrets
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from asyncua import Server, ua

from bridge.opcua._asyncua import UaAddressSpace, address_space, tolerate_unknown_values

__all__ = ["BrowseService"]

# a BrowseDirection out of range must reach _browse_one (BadBrowseDirectionInvalid), not fail the decoding
tolerate_unknown_values(ua.BrowseDirection)

_HAS_SUBTYPE = ua.NodeId(ua.ObjectIds.HasSubtype)
_ALL_FIELDS = 0x3F
_MAX_NODES_PER_BROWSE = ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse)
_MAX_BROWSE_CPS = ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_MaxBrowseContinuationPoints)


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)


@dataclass(slots=True)
class _Pending:
    """The rest of one node's references, waiting for BrowseNext."""

    refs: list[ua.ReferenceDescription]
    position: int
    page: int
    result_mask: int
    request: int  # which Browse call created it (CPs of the current call are never evicted by that call)


class BrowseService:
    """Browse/BrowseNext handlers for ServiceHandlers; one instance per server."""

    def __init__(
        self, server: Server, *, max_references_per_node: int = 1000, max_continuation_points: int = 50
    ) -> None:
        if max_references_per_node < 1 or max_continuation_points < 1:
            raise ValueError("max_references_per_node and max_continuation_points must be at least 1")
        self._aspace: UaAddressSpace = address_space(server)
        self.max_references_per_node = max_references_per_node
        self.max_continuation_points = max_continuation_points
        self._sessions: weakref.WeakKeyDictionary[Any, OrderedDict[bytes, _Pending]] = weakref.WeakKeyDictionary()
        self._subtypes: dict[ua.NodeId, frozenset[ua.NodeId] | None] = {}
        self._requests = itertools.count(1)
        self._advertise()

    def _advertise(self) -> None:
        """ServerCapabilities.MaxBrowseContinuationPoints tells clients how many they may hold."""
        node = self._aspace.get(_MAX_BROWSE_CPS)
        if node is not None and ua.AttributeIds.Value in node.attributes:
            node.attributes[ua.AttributeIds.Value].value = ua.DataValue(
                ua.Variant(min(self.max_continuation_points, 0xFFFF), ua.VariantType.UInt16)
            )

    def _max_nodes_per_browse(self) -> int:
        dv = self._aspace.read_attribute_value(_MAX_NODES_PER_BROWSE, ua.AttributeIds.Value)
        value = dv.Value.Value if dv.Value is not None else None
        return value if isinstance(value, int) and value > 0 else 0

    # ---- services --------------------------------------------------------------------------------------------
    async def browse(self, session: Any, params: ua.BrowseParameters) -> list[ua.BrowseResult]:
        nodes = params.NodesToBrowse or []
        if not nodes:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadNothingToDo)
        limit = self._max_nodes_per_browse()
        if limit and len(nodes) > limit:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManyOperations)
        view = params.View
        if view is not None and view.ViewId is not None and not view.ViewId.is_null():
            raise ua.UaStatusCodeError(ua.StatusCodes.BadViewIdUnknown)
        requested = params.RequestedMaxReferencesPerNode or 0
        page = self.max_references_per_node if requested == 0 else min(requested, self.max_references_per_node)
        request = next(self._requests)
        return [self._browse_one(session, desc, page, request) for desc in nodes]

    async def browse_next(self, session: Any, params: ua.BrowseNextParameters) -> list[ua.BrowseResult]:
        points = params.ContinuationPoints or []
        if not points:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadNothingToDo)
        store = self._sessions.get(session)
        results = []
        request = next(self._requests)
        for point in points:
            pending = store.pop(point, None) if store is not None and point is not None else None
            if pending is None:
                results.append(ua.BrowseResult(StatusCode=_status(ua.StatusCodes.BadContinuationPointInvalid)))
            elif params.ReleaseContinuationPoints:
                results.append(ua.BrowseResult(StatusCode=_status(ua.StatusCodes.Good)))
            else:
                pending.request = request
                results.append(self._page(session, pending))
        return results

    def release(self, session: Any) -> None:
        """Forget every continuation point of a session (called when the session closes)."""
        self._sessions.pop(session, None)

    def continuation_points(self, session: Any) -> int:
        """How many continuation points a session holds (for tests and diagnostics)."""
        store = self._sessions.get(session)
        return len(store) if store is not None else 0

    # ---- one node ----------------------------------------------------------------------------------------------
    def _browse_one(self, session: Any, desc: ua.BrowseDescription, page: int, request: int) -> ua.BrowseResult:
        node = self._aspace.get(desc.NodeId)
        if node is None:
            return ua.BrowseResult(StatusCode=_status(ua.StatusCodes.BadNodeIdUnknown))
        direction = desc.BrowseDirection
        if direction not in (ua.BrowseDirection.Forward, ua.BrowseDirection.Inverse, ua.BrowseDirection.Both):
            return ua.BrowseResult(StatusCode=_status(ua.StatusCodes.BadBrowseDirectionInvalid))
        ref_type = desc.ReferenceTypeId
        if ref_type is None or ref_type.is_null():
            types: frozenset[ua.NodeId] | None = None  # every reference, IncludeSubtypes ignored (Part 4)
        else:
            if not self._is_reference_type(ref_type):
                return ua.BrowseResult(StatusCode=_status(ua.StatusCodes.BadReferenceTypeIdInvalid))
            types = self._with_subtypes(ref_type) if desc.IncludeSubtypes else frozenset((ref_type,))
        class_mask = desc.NodeClassMask or 0
        refs = [
            r
            for r in node.references
            if (direction == ua.BrowseDirection.Both or r.IsForward == (direction == ua.BrowseDirection.Forward))
            and (types is None or r.ReferenceTypeId in types)
            and (not class_mask or (class_mask & r.NodeClass))
        ]
        pending = _Pending(refs, 0, page, desc.ResultMask if desc.ResultMask is not None else _ALL_FIELDS, request)
        return self._page(session, pending)

    def _page(self, session: Any, pending: _Pending) -> ua.BrowseResult:
        start, end = pending.position, pending.position + pending.page
        chunk = pending.refs[start:end]
        result = ua.BrowseResult(StatusCode=_status(ua.StatusCodes.Good), References=self._masked(chunk, pending))
        if end < len(pending.refs):
            pending.position = end
            point = self._store(session, pending)
            if point is None:
                return ua.BrowseResult(StatusCode=_status(ua.StatusCodes.BadNoContinuationPoints))
            result.ContinuationPoint = point
        return result

    def _store(self, session: Any, pending: _Pending) -> bytes | None:
        store = self._sessions.get(session)
        if store is None:
            store = self._sessions[session] = OrderedDict()
        while len(store) >= self.max_continuation_points:
            oldest = next((cp for cp, p in store.items() if p.request != pending.request), None)
            if oldest is None:
                return None  # every one of them belongs to this very request
            del store[oldest]
        point = secrets.token_bytes(16)
        store[point] = pending
        return point

    @staticmethod
    def _masked(refs: list[ua.ReferenceDescription], pending: _Pending) -> list[ua.ReferenceDescription]:
        mask = pending.result_mask & _ALL_FIELDS
        if mask == _ALL_FIELDS:
            return list(refs)  # the stored objects: asyncua never mutates them while encoding
        return [
            ua.ReferenceDescription(
                ReferenceTypeId=r.ReferenceTypeId if mask & 0x01 else ua.NodeId(),
                IsForward=r.IsForward if mask & 0x02 else True,
                NodeId=r.NodeId,
                NodeClass=r.NodeClass if mask & 0x04 else ua.NodeClass.Unspecified,
                BrowseName=r.BrowseName if mask & 0x08 else ua.QualifiedName(),
                DisplayName=r.DisplayName if mask & 0x10 else ua.LocalizedText(),
                TypeDefinition=r.TypeDefinition if mask & 0x20 else ua.ExpandedNodeId(),
            )
            for r in refs
        ]

    # ---- reference types -------------------------------------------------------------------------------------
    def _is_reference_type(self, ref_type: ua.NodeId) -> bool:
        node = self._aspace.get(ref_type)
        if node is None:
            return False
        cls = node.attributes.get(ua.AttributeIds.NodeClass)
        return cls is not None and cls.value is not None and cls.value.Value.Value == ua.NodeClass.ReferenceType

    def _with_subtypes(self, ref_type: ua.NodeId) -> frozenset[ua.NodeId]:
        cached = self._subtypes.get(ref_type)
        if cached is None:
            found: set[ua.NodeId] = set()
            todo = [ref_type]
            while todo:
                current = todo.pop()
                if current in found:
                    continue
                found.add(current)
                node = self._aspace.get(current)
                if node is not None:
                    todo.extend(r.NodeId for r in node.references if r.IsForward and r.ReferenceTypeId == _HAS_SUBTYPE)
            cached = self._subtypes[ref_type] = frozenset(found)
        return cached
