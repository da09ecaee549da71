"""Where the bridge takes over asyncua's service calls.

asyncua's InternalSession answers Read/Write/HistoryRead/Browse/BrowseNext/Call straight from its own address
space and services, with no per-node veto on writes, no user check on HistoryRead and no BrowseNext at all.
`BridgeInternalServer` creates `BridgeSession`s, which hand each of those calls to the handler registered in
`ServiceHandlers` (one per concern: writes, history, browse, ...) and fall back to asyncua where none is set.
Handlers get the session, so they can see `session.user` (a `BridgeUser`) and keep per-session state such as
continuation points; `on_close` handlers release that state when the session ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from asyncua import ua

from bridge.opcua._asyncua import (
    InternalServer,
    InternalSession,
    RequestContext,
    install_browse_next,
    install_request_observer,
    is_timeout_close,
    new_session,
    replace_item_service,
    request_context,
)
from bridge.opcua.security.users import client_host, login_from
from bridge.opcua.services.diagnostics import ServerCounters, SessionCounters, service_count_field
from bridge.opcua.sync.monitored_items import BridgeMonitoredItemService

__all__ = [
    "BridgeInternalServer",
    "BridgeSession",
    "RequestContext",
    "ServiceHandlers",
    "SubscriptionObserver",
    "request_context",
]

CREATE_CHUNK = 500  # monitored items created between two turns of the event loop
_CLOSE_SESSION_REQUEST = ua.NodeId(ua.ObjectIds.CloseSessionRequest_Encoding_DefaultBinary)
_SESSION_REQUESTS = {
    ua.NodeId(i)
    for i in (
        ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary,
        ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary,
    )
}
# refusals that are about who the client is or what it may do (Part 5: SecurityRejectedRequestsCount)
_SECURITY_CODES = {
    getattr(ua.StatusCodes, n)
    for n in dir(ua.StatusCodes)
    if n.startswith(("BadCertificate", "BadSecurity", "BadIdentity", "BadUserAccess"))
}


Handler = Callable[["BridgeSession", Any], Awaitable[Any]]


@dataclass
class ServiceHandlers:
    read: Handler | None = None
    write: Handler | None = None
    history_read: Handler | None = None
    browse: Handler | None = None
    browse_next: Handler | None = None
    call: Handler | None = None
    on_close: list[Callable[[BridgeSession], None]] = field(default_factory=list)
    subscriptions: SubscriptionObserver | None = None


class SubscriptionObserver(Protocol):
    """Told about every monitored item a client creates, modifies or deletes (the sync engine polls what is
    monitored, at the rate it is monitored), and may revise the results before the client sees them."""

    def items_created(
        self, params: ua.CreateMonitoredItemsParameters, results: list[ua.MonitoredItemCreateResult]
    ) -> None: ...

    def items_modified(
        self, params: ua.ModifyMonitoredItemsParameters, results: list[ua.MonitoredItemModifyResult]
    ) -> None: ...

    def items_deleted(self, subscription_id: int, item_ids: list[int]) -> None: ...

    def subscriptions_deleted(self, subscription_ids: list[int]) -> None: ...


class BridgeSession(InternalSession):
    iserver: BridgeInternalServer
    # Write, HistoryRead and Call run beside the connection's other requests (bridge/opcua/_asyncua/service_calls.py)
    concurrent_service_calls = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.diagnostics = SessionCounters()
        self.client_description: ua.ApplicationDescription | None = None
        self.session_name = str(self.name)
        self.closed_by_client = False  # CloseSession received (else a close is a timeout or an abort)

    @property
    def _handlers(self) -> ServiceHandlers:
        return self.iserver.handlers

    async def create_session(self, params: ua.CreateSessionParameters, sockname: Any = None) -> Any:
        self.client_description = params.ClientDescription
        self.session_name = params.SessionName or str(self.name)
        if not request_context.get().secured and params.ClientCertificate:
            # Part 4, CreateSession: with SecurityPolicy None the server shall ignore the client's
            # ApplicationInstanceCertificate. Nothing proves the client holds its key, so checking trust would protect
            # nothing and only lock out clients that send their certificate anyway (UaExpert, node-opcua).
            params.ClientCertificate = None
        try:
            result = await super().create_session(params, sockname)
        except Exception:
            self.iserver.counters.rejected_sessions += 1
            self.iserver.counters.security_rejected_sessions += 1  # the certificate check is all that can refuse
            self.iserver.live_sessions.pop(self.session_id, None)
            raise
        self.iserver.counters.cumulated_sessions += 1
        return result

    def activate_session(self, params: ua.ActivateSessionParameters, peer_certificate: bytes | None) -> Any:
        # asyncua's user manager is not told who is logging in; `name` is the client's peername, and
        # InternalSession.activate_session calls get_user synchronously, inside this context
        with login_from(client_host(self.name)):
            try:
                return super().activate_session(params, peer_certificate)
            except Exception as exc:
                self.iserver.counters.rejected_sessions += 1
                if getattr(exc, "code", None) in _SECURITY_CODES:
                    self.iserver.counters.security_rejected_sessions += 1
                raise

    async def read(self, params: ua.ReadParameters) -> list[ua.DataValue]:
        if self._handlers.read is not None:
            return await self._handlers.read(self, params)
        return await super().read(params)

    async def write(self, params: ua.WriteParameters) -> list[ua.StatusCode]:
        if self._handlers.write is not None:
            return await self._handlers.write(self, params)
        return await super().write(params)

    async def history_read(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        if self._handlers.history_read is not None:
            return await self._handlers.history_read(self, params)
        return await super().history_read(params)

    async def browse(self, params: ua.BrowseParameters) -> list[ua.BrowseResult]:
        if self._handlers.browse is not None:
            return await self._handlers.browse(self, params)
        return await super().browse(params)

    async def browse_next(self, parameters: ua.BrowseNextParameters) -> list[ua.BrowseResult]:
        if self._handlers.browse_next is not None:
            return await self._handlers.browse_next(self, parameters)
        # asyncua raises NotImplementedError here, which the client sees as BadInternalError
        return [
            ua.BrowseResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadContinuationPointInvalid))
            for _ in parameters.ContinuationPoints
        ]

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        if self._handlers.call is not None:
            return await self._handlers.call(self, params)
        return await super().call(params)

    async def create_subscription(
        self,
        params: ua.CreateSubscriptionParameters,
        callback: Callable[..., Any],
        request_callback: Callable[..., Any] | None = None,
    ) -> ua.CreateSubscriptionResult:
        result = await super().create_subscription(params, callback, request_callback=request_callback)
        self.iserver.counters.cumulated_subscriptions += 1
        # the new subscription has no items yet: its item service can still be swapped (see monitored_items.py)
        replace_item_service(self, result.SubscriptionId, BridgeMonitoredItemService)
        return result

    async def create_monitored_items(
        self, params: ua.CreateMonitoredItemsParameters
    ) -> list[ua.MonitoredItemCreateResult]:
        # A client may create tens of thousands of items in one request. asyncua would create them all in one go,
        # and every other session would wait that long; in chunks, with a turn of the event loop between them,
        # the others are served meanwhile. This session's next request still waits: asyncua answers a connection's
        # requests in order.
        items = list(params.ItemsToCreate)
        results: list[ua.MonitoredItemCreateResult] = []
        if not items:
            results = await super().create_monitored_items(params)
        for start in range(0, len(items), CREATE_CHUNK):
            if start:
                await asyncio.sleep(0)
            part = ua.CreateMonitoredItemsParameters(
                SubscriptionId=params.SubscriptionId,
                TimestampsToReturn=params.TimestampsToReturn,
                ItemsToCreate=items[start : start + CREATE_CHUNK],
            )
            results += await super().create_monitored_items(part)
        if self._handlers.subscriptions is not None:
            self._handlers.subscriptions.items_created(params, results)
        return results

    async def modify_monitored_items(
        self, params: ua.ModifyMonitoredItemsParameters
    ) -> list[ua.MonitoredItemModifyResult]:
        results = await super().modify_monitored_items(params)
        if self._handlers.subscriptions is not None:
            self._handlers.subscriptions.items_modified(params, results)
        return results

    async def delete_monitored_items(self, params: ua.DeleteMonitoredItemsParameters) -> list[ua.StatusCode]:
        results = await super().delete_monitored_items(params)
        if self._handlers.subscriptions is not None:
            self._handlers.subscriptions.items_deleted(params.SubscriptionId, list(params.MonitoredItemIds))
        return results

    async def delete_subscriptions(self, ids: list[int]) -> list[ua.StatusCode]:
        results = await super().delete_subscriptions(ids)
        if self._handlers.subscriptions is not None:
            self._handlers.subscriptions.subscriptions_deleted(list(ids))
        return results

    async def close_session(self, delete_subs: bool = True) -> None:
        if self.iserver.live_sessions.pop(self.session_id, None) is not None and not self.closed_by_client:
            if is_timeout_close(self, asyncio.current_task()):
                self.iserver.counters.session_timeouts += 1
            else:  # the connection went away without a CloseSession
                self.iserver.counters.session_aborts += 1
        for release in self._handlers.on_close:
            release(self)
        await super().close_session(delete_subs)


class BridgeInternalServer(InternalServer):
    """An InternalServer whose client sessions are BridgeSessions (the internal admin session stays asyncua's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handlers = ServiceHandlers()
        self.counters = ServerCounters()
        self.live_sessions: dict[ua.NodeId, BridgeSession] = {}  # client sessions not closed yet, by session id
        # asyncua 2.1 never hands BrowseNext to a session; this makes it reach BridgeSession.browse_next
        install_browse_next()
        install_request_observer()  # then observe_request wraps every request (and BrowseNext still works)

    def create_session(self, name: str, user: Any = None, external: bool = False) -> InternalSession:
        from asyncua.crypto.permission_rules import User, UserRole

        session = new_session(
            BridgeSession, self, name, user if user is not None else User(role=UserRole.Anonymous), external
        )
        if external and isinstance(session, BridgeSession):
            self.live_sessions[session.session_id] = session
        return session

    @contextmanager
    def observe_request(self, session: Any, typeid: ua.NodeId, header: Any, secured: bool) -> Iterator[None]:
        """Around every client request (inside its `request_context`, which the processor sets): its outcome for the
        diagnostics."""
        mine = session if isinstance(session, BridgeSession) else None
        if mine is not None and typeid == _CLOSE_SESSION_REQUEST:
            mine.closed_by_client = True
        failed, unauthorized = True, False
        try:
            yield
            failed = False
        except Exception as exc:
            unauthorized = getattr(exc, "code", None) in _SECURITY_CODES
            if typeid not in _SESSION_REQUESTS:  # refused sessions are counted as sessions
                self.counters.rejected_requests += 1
                self.counters.security_rejected_requests += unauthorized
            raise
        finally:
            if mine is not None:
                mine.diagnostics.count(service_count_field(typeid), failed, unauthorized)
