"""Touchpoint 14: slow service calls beside a connection's other requests."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asyncua import ua
from asyncua.server.internal_server import InternalServer
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import (
    nodeid_from_binary,
)

from bridge.opcua._asyncua.request_scope import request_deadline
from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

log = logging.getLogger(__name__)


# ---- 14. Slow service calls beside a connection's other requests, and the request's TimeoutHint --------------------
# Why: asyncua answers the requests of one connection strictly one after the other (OPCUAProtocol's message loop
# awaits UaProcessor.process for each). A Write, HistoryRead or Call that waits for a slow WinCC would hold up
# everything behind it on that connection, the client's keep-alive Read included, and the client drops the session
# (attack finding 6). Those three services run in a task of their own instead: among themselves they stay in order
# (one lock per connection, asyncio locks are first come first served, so two writes of one client reach WinCC in
# the order sent), while Read, Browse, Publish and the rest go on. Responses may then leave out of order, which OPC
# UA allows (a response names its request). The request's TimeoutHint becomes a deadline the service sees through
# the request context (section 8, `request_deadline()`): a call still queued when it passes is answered BadTimeout
# without being made.
# Read against asyncua 2.1.0: UaProcessor.process_message(seqhdr, body) decodes the type id and RequestHeader from
# body (a Buffer; copy() to peek), with no await before it calls _process_message(typeid, requesthdr, seqhdr, body),
# and returns False to close; send_response(handle, seqhdr, response); _closing, _transport.


_DETACHED = frozenset(
    ua.NodeId(i)
    for i in (
        ua.ObjectIds.WriteRequest_Encoding_DefaultBinary,
        ua.ObjectIds.HistoryReadRequest_Encoding_DefaultBinary,
        ua.ObjectIds.CallRequest_Encoding_DefaultBinary,
    )
)
# Detached calls one connection may have waiting; past this the connection waits, as asyncua itself would
MAX_DETACHED_PER_CONNECTION = 64


def _concurrent(session: Any) -> bool:
    return bool(getattr(session, "concurrent_service_calls", False))


class ConcurrentServiceCalls:
    """Mixin for asyncua's UaProcessor (after RequestScope, before the classes that serve the request): see the
    section comment above. Only sessions whose class says `concurrent_service_calls = True` (BridgeSession) are
    served this way; others as asyncua does."""

    session: Any
    _closing: bool
    _transport: Any

    async def process_message(self, seqhdr: Any, body: Any) -> Any:
        typeid = nodeid_from_binary(body.copy())
        calls: set[asyncio.Task[None]] = self.__dict__.setdefault("_bridge_calls", set())
        if typeid not in _DETACHED or not _concurrent(self.session) or len(calls) >= MAX_DETACHED_PER_CONNECTION:
            return await super().process_message(seqhdr, body)  # type: ignore[misc]
        task = asyncio.create_task(self._detached(seqhdr, body), name="ua-service-call")
        calls.add(task)
        task.add_done_callback(calls.discard)
        return True

    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        if typeid not in _DETACHED or not _concurrent(self.session):
            return await super()._process_message(typeid, requesthdr, seqhdr, body)  # type: ignore[misc]
        # in order among themselves; the call ahead is bounded by its own deadline or the write timeout
        async with self._bridge_serial():
            deadline = request_deadline()
            if deadline is not None and time.monotonic() >= deadline:
                fault = ua.ServiceFault()
                fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadTimeout)
                self.send_response(requesthdr.RequestHandle, seqhdr, fault)  # type: ignore[attr-defined]
                return True
            return await super()._process_message(typeid, requesthdr, seqhdr, body)  # type: ignore[misc]

    def _bridge_serial(self) -> asyncio.Lock:
        lock: asyncio.Lock = self.__dict__.setdefault("_bridge_lock", asyncio.Lock())
        return lock

    async def _detached(self, seqhdr: Any, body: Any) -> None:
        try:
            ok = await super().process_message(seqhdr, body)  # type: ignore[misc]
        except Exception:  # asyncua's own handler catches what a service raises; this is the loop's last net
            log.exception("service call failed")
            ok = True
        if not ok and not self._closing:
            self._transport.close()  # what asyncua's message loop does when processing says stop


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("14 service calls beside the others", UaProcessor, "process_message", ("self", "seqhdr", "body")),
    *(
        InstanceAttribute("14 service calls beside the others", UaProcessor, name)
        for name in ("_closing", "_transport")
    ),
    InstanceAttribute("14 service calls beside the others", InternalServer, "max_session_timeout_ms"),
]
