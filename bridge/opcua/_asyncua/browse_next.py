"""Touchpoint 5: BrowseNext, which asyncua 2.1's UaProcessor does not dispatch."""

from __future__ import annotations

import time
from typing import Any

from asyncua import ua
from asyncua.server import binary_server_asyncio
from asyncua.server.internal_session import InternalSession
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import (
    struct_from_binary,
)

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

# ---- 5. BrowseNext dispatch ------------------------------------------------------------------------------------------
# Why: asyncua 2.1's UaProcessor has no BrowseNext branch: the request never reaches the session and the client gets
# BadServiceUnsupported. The subclass decodes BrowseNext and hands it to a session that implements browse_next
# (a BridgeSession), with the same checks asyncua applies to every service; everything else goes to asyncua
# unchanged. asyncua creates one UaProcessor per connection by looking the class up in binary_server_asyncio, so
# the subclass is installed there. Permission: whoever may Browse may BrowseNext (SimpleRoleRuleset lists only
# Browse). Read against asyncua 2.1.0: UaProcessor._process_message(typeid, requesthdr, seqhdr, body), its
# session, _connection.security_policy.permissions, session_last_activity, send_response(handle, seqhdr, response).

_BROWSE_REQUEST = ua.NodeId(ua.ObjectIds.BrowseRequest_Encoding_DefaultBinary)
_BROWSE_NEXT_REQUEST = ua.NodeId(ua.ObjectIds.BrowseNextRequest_Encoding_DefaultBinary)


def _answers_browse_next(session: Any) -> bool:
    return isinstance(session, InternalSession) and type(session).browse_next is not InternalSession.browse_next


class BrowseNextProcessor(UaProcessor):
    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        session = self.session
        if typeid != _BROWSE_NEXT_REQUEST or not _answers_browse_next(session):
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        assert session is not None
        if not session.is_activated():
            raise ua.UaStatusCodeError(ua.StatusCodes.BadSessionNotActivated)
        permissions = self._connection.security_policy.permissions
        if permissions is not None and permissions.check_validity(session.user, _BROWSE_REQUEST, body) is False:
            raise ua.uaerrors.BadUserAccessDenied
        self.session_last_activity = time.monotonic()
        session.touch()
        params = struct_from_binary(ua.BrowseNextParameters, body)
        response = ua.BrowseNextResponse()
        response.Parameters.Results = await session.browse_next(params)
        self.send_response(requesthdr.RequestHandle, seqhdr, response)
        return True


def install_browse_next() -> None:
    """Process-wide, idempotent: sessions that do not implement browse_next behave exactly as before."""
    if binary_server_asyncio.UaProcessor is UaProcessor:
        binary_server_asyncio.UaProcessor = BrowseNextProcessor


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("5 BrowseNext dispatch", binary_server_asyncio, "UaProcessor"),
    Touchpoint(
        "5 BrowseNext dispatch", UaProcessor, "_process_message", ("self", "typeid", "requesthdr", "seqhdr", "body")
    ),
    Touchpoint(
        "5 BrowseNext dispatch",
        UaProcessor,
        "send_response",
        ("self", "requesthandle", "seqhdr", "response", "msgtype"),
    ),
    *(
        InstanceAttribute("5 BrowseNext dispatch", UaProcessor, name)
        for name in ("session", "_connection", "session_last_activity")
    ),
    Touchpoint("5 BrowseNext dispatch", InternalSession, "is_activated"),
    Touchpoint("5 BrowseNext dispatch", InternalSession, "touch"),
]
