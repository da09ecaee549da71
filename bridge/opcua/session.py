"""Where the bridge takes over asyncua's service calls.

asyncua's InternalSession answers Read/Write/HistoryRead/Browse/BrowseNext/Call straight from its own address
space and services, with no per-node veto on writes, no user check on HistoryRead and no BrowseNext at all.
`BridgeInternalServer` creates `BridgeSession`s, which hand each of those calls to the handler registered in
`ServiceHandlers` (one per concern: writes, history, browse, ...) and fall back to asyncua where none is set.
Handlers get the session, so they can see `session.user` (a `BridgeUser`) and keep per-session state such as
continuation points; `on_close` handlers release that state when the session ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession

__all__ = ["BridgeInternalServer", "BridgeSession", "ServiceHandlers"]

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


class BridgeSession(InternalSession):
    iserver: BridgeInternalServer

    @property
    def _handlers(self) -> ServiceHandlers:
        return self.iserver.handlers

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
        return [ua.BrowseResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadContinuationPointInvalid))
                for _ in parameters.ContinuationPoints]

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        if self._handlers.call is not None:
            return await self._handlers.call(self, params)
        return await super().call(params)

    async def close_session(self, delete_subs: bool = True) -> None:
        for release in self._handlers.on_close:
            release(self)
        await super().close_session(delete_subs)


class BridgeInternalServer(InternalServer):
    """An InternalServer whose client sessions are BridgeSessions (the internal admin session stays asyncua's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handlers = ServiceHandlers()

    def create_session(self, name: str, user: Any = None, external: bool = False) -> InternalSession:
        from asyncua.crypto.permission_rules import User, UserRole

        return BridgeSession(
            self, self.aspace, self.subscription_service, name,
            user=user if user is not None else User(role=UserRole.Anonymous), external=external,
        )
