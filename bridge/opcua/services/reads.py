"""Read: answered from the address space cache, never from REST, with per-user rights.

A Read of a tag's Value also tells the sync engine the tag is in use (it is polled fast for a while). The
UserAccessLevel of a tag is answered for the session's role (asyncua stores one static value for everyone):
readers see CurrentRead (+HistoryRead on archived tags), operators and admins also CurrentWrite on writable tags
that their write rules let them write (users.may_write, the rule the Write service applies).
A session without any role gets BadUserAccessDenied for tag values. UserExecutable of a method is answered with the
same rule the Call service applies (calls.may_call). An IndexRange is applied to whatever is read (see
index_range.py: a range on a scalar tag is BadIndexRangeNoData, bad syntax BadIndexRangeInvalid).

MaxAge (Part 4, 5.10.2): tags whose cached value is older than the request's MaxAge (MaxAge 0: every tag asked)
are read from WinCC first, in one batched REST read of just those tags (SyncEngine.read_now). The Read waits for
it at most `sync.max_age_wait_ms` and never past half the client's TimeoutHint, then answers from the cache with
the cache's status: Part 4 asks for best effort, and most clients send MaxAge 0 on every Read, so a slow or
unreachable WinCC must never make Reads slow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from asyncua import Server, ua

from bridge.opcua._asyncua import InternalSession
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.security.users import may_write, role_of
from bridge.opcua.services.calls import may_call
from bridge.opcua.services.index_range import apply_index_range
from bridge.opcua.services.session import request_context
from bridge.wincc.models import TagInfo

__all__ = ["ReadService", "user_access_level"]

A = ua.AttributeIds
AL = ua.AccessLevel
S = ua.StatusCodes
_NOT_READ = {S.BadNodeIdUnknown, S.BadAttributeIdInvalid, S.BadUserAccessDenied, S.BadNotReadable}


class TagFreshness(Protocol):
    """What Read needs of the sync side: a SyncEngine, or the SyncGroup of several stations (bridge/sources.py)."""

    def note_read(self, names: Iterable[str]) -> None: ...

    def age_s(self, name: str) -> float: ...

    async def read_now(self, names: Sequence[str], wait_s: float) -> None: ...


def user_access_level(tag: TagInfo, can_write: bool) -> int:
    level = 1 << AL.CurrentRead.value
    if tag.archived:
        level |= 1 << AL.HistoryRead.value
    if tag.writable and can_write:
        level |= 1 << AL.CurrentWrite.value
    return level


class ReadService:
    def __init__(self, server: Server, directory: TagDirectory, sync: TagFreshness, max_age_wait_ms: int = 250) -> None:
        self._directory = directory
        self._sync = sync
        self._max_age_wait_s = max_age_wait_ms / 1000

    async def read(self, session: InternalSession, params: ua.ReadParameters) -> list[ua.DataValue]:
        if role_of(session.user) is not None:
            await self._refresh(params)
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
        for i, rv in enumerate(params.NodesToRead):
            if rv.IndexRange and results[i].StatusCode.value not in _NOT_READ:
                results[i] = apply_index_range(results[i], rv.IndexRange)
        if read_tags:
            self._sync.note_read(read_tags)
        return results

    async def _refresh(self, params: ua.ReadParameters) -> None:
        """Read from WinCC the asked tags the cache cannot answer within MaxAge, waiting a bounded time."""
        max_age_s = max(0.0, float(params.MaxAge or 0)) / 1000
        stale = [
            tag.name
            for rv in params.NodesToRead
            if rv.AttributeId == A.Value
            and (tag := self._directory.tag_for(rv.NodeId)) is not None
            and (max_age_s == 0 or self._sync.age_s(tag.name) > max_age_s)
        ]
        if not stale:
            return
        wait_s = self._max_age_wait_s
        hint_ms = request_context.get().timeout_hint_ms
        if hint_ms > 0:
            wait_s = min(wait_s, hint_ms / 2000)  # half the hint: the answer must still reach the client in time
        await self._sync.read_now(stale, wait_s)
