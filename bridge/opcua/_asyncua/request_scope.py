"""Touchpoint 8: the request being served (channel policy, TimeoutHint, deadline), and its outcome."""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.server.internal_session import InternalSession
from asyncua.server.uaprocessor import UaProcessor

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

# ---- 8. Request context: the channel's policy, the TimeoutHint, each request's outcome -------------------------------
# Why: Part 4 says the server ignores the client certificate on SecurityPolicy None, and only the processor knows
# the channel's policy; Read's MaxAge wait must end before the request's TimeoutHint, and a Write, HistoryRead or
# Call that waits for WinCC must answer before it (section 14); the server diagnostics count every request and its
# outcome per session, and sessions that end by timeout. asyncua hands none of that to the session. So the
# processor sets `request_context` (one RequestContext per request: secured, TimeoutHint, AuditEntryId and the
# deadline the hint gives) around each request - the only place that sets it - and asks its InternalServer for
# `observe_request(session, typeid, requesthdr, secured)`, a context manager wrapped around each request
# (BridgeInternalServer has one; other servers are left alone).
# Read against asyncua 2.1.0: UaProcessor.iserver, session, _connection.security_policy.URI (SecurityPolicyNone.URI
# on an unsecured channel), RequestHeader.TimeoutHint and AuditEntryId; InternalSession._timeout_task is the task
# that closes an idle session; InternalSubscription.monitored_item_srv._monitored_items.

NONE_POLICY_URI: str = SecurityPolicyNone.URI
# Part of the TimeoutHint kept for the answer to reach the client before it gives up
HINT_SHARE = 0.9


@dataclass(frozen=True)
class RequestContext:
    """The request being served: whether its SecureChannel is secured, the client's TimeoutHint (ms, 0 = none),
    its AuditEntryId, and the time.monotonic() by which it must be answered (from the TimeoutHint, or None)."""

    secured: bool = True
    timeout_hint_ms: int = 0
    audit_entry_id: str = ""
    deadline: float | None = None


NO_REQUEST = RequestContext()  # outside any client request (in-process calls, tests)
request_context: ContextVar[RequestContext] = ContextVar("bridge_request_context", default=NO_REQUEST)


def request_deadline() -> float | None:
    """time.monotonic() by which the request being served must be answered (from its TimeoutHint), or None."""
    return request_context.get().deadline


def _context_of(requesthdr: Any, secured: bool) -> RequestContext:
    hint = int(requesthdr.TimeoutHint or 0)
    deadline = time.monotonic() + hint / 1000 * HINT_SHARE if hint else None
    return RequestContext(secured, hint, requesthdr.AuditEntryId or "", deadline)


class RequestScope:
    """Mixin for asyncua's UaProcessor (before the classes that serve the request): each request runs inside its
    RequestContext and, where the InternalServer has one, its `observe_request`."""

    iserver: Any
    session: Any
    _connection: Any

    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        secured = getattr(self._connection.security_policy, "URI", NONE_POLICY_URI) != NONE_POLICY_URI
        token = request_context.set(_context_of(requesthdr, secured))
        try:
            observe = getattr(self.iserver, "observe_request", None)
            if observe is None:
                return await super()._process_message(typeid, requesthdr, seqhdr, body)  # type: ignore[misc]
            with observe(self.session, typeid, requesthdr, secured):
                return await super()._process_message(typeid, requesthdr, seqhdr, body)  # type: ignore[misc]
        finally:
            request_context.reset(token)


def is_timeout_close(session: InternalSession, current: asyncio.Task[Any] | None) -> bool:
    """True when `current` (the running task) is the session's own idle watchdog, which closes timed-out sessions."""
    return current is not None and current is getattr(session, "_timeout_task", None)


def monitored_item_count(subscription: Any) -> int:
    """How many monitored items an InternalSubscription holds (asyncua has no public count)."""
    return len(subscription.monitored_item_srv._monitored_items)


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("8 request context", UaProcessor, "__init__", ("self", "internal_server", "transport", "limits")),
    InstanceAttribute("8 request context", UaProcessor, "iserver"),
    Touchpoint("8 request context", SecurityPolicyNone, "URI"),
    InstanceAttribute("8 request context", InternalSession, "_timeout_task"),
    Touchpoint("8 request context", ua.RequestHeader, "TimeoutHint"),
    Touchpoint("8 request context", ua.RequestHeader, "AuditEntryId"),
    InstanceAttribute("8 request context", UaProcessor, "_connection"),
]
