"""Touchpoint 15: password checks beside the event loop."""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

# ---- 15. Password checks beside the event loop ----------------------------------------------------------------------
# Why: asyncua calls UserManager.get_user synchronously inside InternalSession.activate_session, itself called
# without await by the processor, so a scrypt check (~60 ms of CPU) held the event loop: ten logins at once stalled
# every other client for over a second. Before asyncua's ActivateSession branch runs, this processor peeks at the
# request, decrypts the user name token as asyncua will, and enters the user manager's
# `checked_off_loop(session_name, username, password)` (BridgeUserManager has one) around asyncua's own handling;
# the manager checks the password on its threads and get_user takes that verdict. Everything else (the session
# lookup, the client signature, the refusal codes) stays asyncua's. A request this cannot read is left to asyncua,
# which answers it as before. Read against asyncua 2.1.0: UaProcessor._process_message(typeid, requesthdr, seqhdr,
# body) with body a Buffer (copy() to peek); ActivateSessionParameters.UserIdentityToken; UaProcessor.session, else
# InternalServer.lookup_external_session(AuthenticationToken) on a reconnect; InternalServer.decrypt_user_token(
# isession, token) -> (username, password); InternalServer.user_manager; InternalSession.name.

_ACTIVATE_SESSION_REQUEST = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)


class OffLoopLogin(UaProcessor):
    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        checked = getattr(self.iserver.user_manager, "checked_off_loop", None)
        credentials = self._user_name_login(requesthdr, body) if typeid == _ACTIVATE_SESSION_REQUEST else None
        if checked is None or credentials is None:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        async with checked(*credentials):
            return await super()._process_message(typeid, requesthdr, seqhdr, body)

    def _user_name_login(self, requesthdr: Any, body: Any) -> tuple[Any, str, str] | None:
        """(session name, user name, password) of an ActivateSession with a user name token, or None."""
        try:
            params = struct_from_binary(ua.ActivateSessionParameters, body.copy())
            token = params.UserIdentityToken
            if not isinstance(token, ua.UserNameIdentityToken) or token.UserName is None:
                return None
            session = self.session or self.iserver.lookup_external_session(requesthdr.AuthenticationToken)
            if session is None:
                return None
            username, password = self.iserver.decrypt_user_token(session, token)
        except Exception:  # whatever is wrong, asyncua's own branch finds it again and answers it
            return None
        return session.name, username, password or ""


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint(
        "15 password checks beside the loop", InternalServer, "decrypt_user_token", ("self", "isession", "token")
    ),
    Touchpoint("15 password checks beside the loop", InternalServer, "lookup_external_session", ("self", "auth_token")),
    Touchpoint("15 password checks beside the loop", ua.ActivateSessionParameters, "UserIdentityToken"),
    InstanceAttribute("15 password checks beside the loop", InternalServer, "user_manager"),
    InstanceAttribute("15 password checks beside the loop", InternalSession, "name"),
]
