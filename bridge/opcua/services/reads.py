"""Read: answered from the address space cache, never from REST, with per-user rights.

A Read of a tag's Value also tells the sync engine the tag is in use (it is polled fast for a while). The
UserAccessLevel of a tag is answered for the session's role (asyncua stores one static value for everyone):
readers see CurrentRead (+HistoryRead on archived tags), operators and admins also CurrentWrite on writable tags
that their write rules let them write (users.may_write, the rule the Write service applies).
A session without any role gets BadUserAccessDenied for tag values. UserExecutable of a method is answered with the
same rule the Call service applies (calls.may_call).
"""

from __future__ import annotations

from asyncua import Server, ua

from bridge.opcua._asyncua import InternalSession
from bridge.opcua.services.calls import may_call
from bridge.opcua.sync.engine import SyncEngine
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.security.users import may_write, role_of
from bridge.wincc.models import TagInfo

__all__ = ["ReadService", "user_access_level"]

A = ua.AttributeIds
AL = ua.AccessLevel


def user_access_level(tag: TagInfo, can_write: bool) -> int:
    level = 1 << AL.CurrentRead.value
    if tag.archived:
        level |= 1 << AL.HistoryRead.value
    if tag.writable and can_write:
        level |= 1 << AL.CurrentWrite.value
    return level


class ReadService:
    def __init__(self, server: Server, directory: TagDirectory, sync: SyncEngine) -> None:
        self._directory = directory
        self._sync = sync

    async def read(self, session: InternalSession, params: ua.ReadParameters) -> list[ua.DataValue]:
        # asyncua's own read, with its PreRead/PostRead callbacks
        results = await InternalSession.read(session, params)
        role = role_of(session.user)
        read_tags: list[str] = []
        for i, rv in enumerate(params.NodesToRead):
            if rv.AttributeId == A.UserExecutable and results[i].StatusCode.is_good():
                executable = bool(results[i].Value.Value) and may_call(role, rv.NodeId, self._directory.bridge_ns)
                results[i] = ua.DataValue(ua.Variant(executable, ua.VariantType.Boolean))
                continue
            tag = self._directory.tag_for(rv.NodeId)
            if tag is None:
                continue
            if rv.AttributeId == A.Value:
                if role is None:
                    results[i] = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadUserAccessDenied))
                else:
                    read_tags.append(tag.name)
            elif rv.AttributeId == A.UserAccessLevel:
                level = 0 if role is None else user_access_level(tag, may_write(session.user, tag.name))
                results[i] = ua.DataValue(ua.Variant(level, ua.VariantType.Byte))
        if read_tags:
            self._sync.note_read(read_tags)
        return results
