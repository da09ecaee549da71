"""Call: who may call which method.

- no role: nothing.
- reader: methods that only read (GetMonitoredItems, ConditionRefresh/ConditionRefresh2, ResendData).
- operator: also the condition methods (Acknowledge, Confirm, AddComment, Enable, Disable) and every other
  method that is not admin-only.
- admin: everything, including the admin-only methods (the bridge's own methods in its namespace, and server
  methods that change what others see, e.g. RequestServerStateChange, SetSubscriptionDurable).
The same rule answers UserExecutable per session (see reads.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from asyncua import Server, ua

from bridge.config import Role
from bridge.opcua._asyncua import InternalSession
from bridge.opcua.security.users import role_of

__all__ = ["CallService", "may_call"]

O = ua.ObjectIds
_READ_ONLY = {
    O.Server_GetMonitoredItems,
    O.Server_ResendData,
    O.ConditionType_ConditionRefresh,
    O.ConditionType_ConditionRefresh2,
}
_ADMIN_ONLY = {
    O.Server_RequestServerStateChange,
    O.Server_SetSubscriptionDurable,
}


def may_call(role: Role | None, method_id: ua.NodeId, bridge_ns: int | None = None) -> bool:
    if role is None:
        return False
    ident = method_id.Identifier if method_id.NamespaceIndex == 0 else None
    if role is Role.admin:
        return True
    if ident in _ADMIN_ONLY or (bridge_ns is not None and method_id.NamespaceIndex == bridge_ns):
        return False
    if role is Role.operator:
        return True
    return ident in _READ_ONLY


class MethodRoute(Protocol):
    """Methods answered by the bridge with the calling session (asyncua's method callbacks never see it)."""

    def claims(self, request: ua.CallMethodRequest) -> bool: ...

    call: Callable[[InternalSession, ua.CallMethodRequest], Awaitable[ua.CallMethodResult]]
    # told of a claimed call the session may not make (answered BadUserAccessDenied here), e.g. to audit it
    refused: Callable[[InternalSession, ua.CallMethodRequest], Awaitable[None]]


class CallService:
    def __init__(self, server: Server, bridge_ns: int | None = None) -> None:
        self._bridge_ns = bridge_ns
        self.routes: list[MethodRoute] = []  # asked in order, after the rights check

    async def call(self, session: InternalSession, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        role = role_of(session.user)
        allowed = [
            p
            for p in params
            if may_call(role, p.MethodId, self._bridge_ns) and not any(r.claims(p) for r in self.routes)
        ]
        results = iter(await InternalSession.call(session, allowed) if allowed else [])
        out: list[ua.CallMethodResult] = []
        for p in params:
            route = next((r for r in self.routes if r.claims(p)), None)
            if not may_call(role, p.MethodId, self._bridge_ns):
                out.append(ua.CallMethodResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)))
                if route is not None:
                    await route.refused(session, p)
            elif route is not None:
                out.append(await route.call(session, p))
            else:
                out.append(next(results))
        return out
