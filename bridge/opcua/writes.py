"""OPC UA Write -> WinCC REST write, with a true StatusCode per node.

asyncua's PreWrite callback cannot reject one node of a request, so the whole Write is handled here. Per node, in
order: the node exists (BadNodeIdUnknown), the attribute is Value (BadNotWritable), no IndexRange
(BadIndexRangeInvalid: tags are scalars), no StatusCode/timestamps set by the client (BadWriteNotSupported:
WinCC stamps its own), the tag is writable (BadNotWritable), the session's role and write rules allow it
(BadUserAccessDenied), the value converts to the WinCC type without loss (BadTypeMismatch) and lies inside the
tag's limits (BadOutOfRange). Everything that passes goes to WinCC in one call of the REST client (one batch PUT
for restservice, capped concurrent PUTs for dp); WinCC's answer per tag is the node's StatusCode, and Good only
after WinCC confirmed. A WinCC that does not answer in time gives BadTimeout, never a hung client.

Nodes that are not WinCC tags (server objects, folders, BridgeStatus) are writable only by admins, through
asyncua's own write path. A NodeId given twice in one request is written once per occurrence, in order.
Every tag write is logged: user, tag, old value, new value, result.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable
from typing import Any

from asyncua import Server, ua
from asyncua.server.internal_session import InternalSession

from bridge.config import OpcUaConfig, Role
from bridge.opcua.status import write_error_to_status
from bridge.opcua.tags import TagDirectory
from bridge.opcua.types import to_wincc
from bridge.opcua.users import BridgeUser, role_of
from bridge.wincc.client import WinCCClient
from bridge.wincc.models import TagInfo, WriteError, WriteResult

__all__ = ["WriteRouter"]

log = logging.getLogger("bridge.audit.write")

S = ua.StatusCodes
_VALUE = ua.AttributeIds.Value


def _code(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)


class WriteRouter:
    def __init__(
        self,
        server: Server,
        directory: TagDirectory,
        client: WinCCClient,
        config: OpcUaConfig,
        on_written: Callable[[str, Any], None],
        timeout_s: float = 10.0,
    ) -> None:
        self._server = server
        self._aspace = server.iserver.aspace
        self._directory = directory
        self._client = client
        self._rules = config.write_rules
        self._on_written = on_written
        self._timeout_s = timeout_s

    # ---- per-node checks ----------------------------------------------------------------------------------
    def _allowed(self, user: object, tag: TagInfo) -> bool:
        role = role_of(user)
        if role is None or not role.can_write:
            return False
        name = getattr(user, "name", None)
        patterns = self._rules.get(name) if name else None
        return patterns is None or any(fnmatch.fnmatchcase(tag.name, p) for p in patterns)

    def _check(self, user: object, wv: ua.WriteValue, tag: TagInfo) -> tuple[ua.StatusCode | None, Any]:
        if wv.AttributeId != _VALUE:
            return _code(S.BadNotWritable), None
        if wv.IndexRange:
            return _code(S.BadIndexRangeInvalid), None
        dv = wv.Value
        if dv.SourceTimestamp is not None or dv.ServerTimestamp is not None or (
            dv.StatusCode is not None and dv.StatusCode.value != 0
        ):
            return _code(S.BadWriteNotSupported), None
        if not tag.writable:
            return _code(S.BadNotWritable), None
        if not self._allowed(user, tag):
            return _code(S.BadUserAccessDenied), None
        if dv.Value is None:
            return _code(S.BadTypeMismatch), None
        try:
            value = to_wincc(tag.data_type, dv.Value)
        except TypeError:
            return _code(S.BadTypeMismatch), None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (tag.low is not None and value < tag.low) or (tag.high is not None and value > tag.high):
                return _code(S.BadOutOfRange), None
        return None, value

    # ---- the Write service ----------------------------------------------------------------------------------
    async def write(self, session: InternalSession, params: ua.WriteParameters) -> list[ua.StatusCode]:
        user = session.user
        results: list[ua.StatusCode | None] = [None] * len(params.NodesToWrite)
        accepted: list[tuple[int, TagInfo, Any]] = []
        others: list[int] = []
        for i, wv in enumerate(params.NodesToWrite):
            tag = self._directory.tag_for(wv.NodeId)
            if tag is None:
                if wv.NodeId not in self._aspace:
                    results[i] = _code(S.BadNodeIdUnknown)
                elif role_of(user) is Role.admin:
                    others.append(i)
                else:
                    results[i] = _code(S.BadUserAccessDenied)
                continue
            status, value = self._check(user, wv, tag)
            if status is not None:
                results[i] = status
                self._audit(user, tag, wv, status)
            else:
                accepted.append((i, tag, value))

        if others:
            sub = ua.WriteParameters(NodesToWrite=[params.NodesToWrite[i] for i in others])
            for i, code in zip(others, await self._server.iserver.attribute_service.write(sub, user=user),
                               strict=True):
                results[i] = code

        # a NodeId written twice in one request goes to WinCC once per occurrence, in order
        pending = accepted
        while pending:
            batch: dict[str, tuple[int, TagInfo, Any]] = {}
            later: list[tuple[int, TagInfo, Any]] = []
            for item in pending:
                if item[1].name in batch:
                    later.append(item)
                else:
                    batch[item[1].name] = item
            pending = later
            outcome = await self._send({name: value for name, (_, _, value) in batch.items()})
            for name, (i, tag, value) in batch.items():
                result = outcome.get(name) or WriteResult(name, WriteError.other, "no answer for this tag")
                results[i] = write_error_to_status(result.error, tag_writable=tag.writable)
                self._audit(user, tag, params.NodesToWrite[i], results[i], value, result.reason)
                if result.ok:
                    self._on_written(name, value)
        return [r if r is not None else _code(S.BadInternalError) for r in results]

    async def _send(self, items: dict[str, Any]) -> dict[str, WriteResult]:
        try:
            return await asyncio.wait_for(self._client.write(items), timeout=self._timeout_s)
        except TimeoutError:
            return {n: WriteResult(n, WriteError.timeout, f"no answer from WinCC in {self._timeout_s:g} s") for n in items}
        except Exception as exc:  # the REST client promises not to raise; if it does, no node is Good
            logging.getLogger(__name__).exception("REST write failed")
            return {n: WriteResult(n, WriteError.unreachable, type(exc).__name__) for n in items}

    def _audit(self, user: object, tag: TagInfo, wv: ua.WriteValue, status: ua.StatusCode, sent: Any = None,
               reason: str = "") -> None:
        old = self._aspace.read_attribute_value(wv.NodeId, _VALUE)
        old_value = old.Value.Value if old.Value is not None else None
        new_value = wv.Value.Value.Value if wv.Value is not None and wv.Value.Value is not None else None
        who = user.label if isinstance(user, BridgeUser) else "unknown"
        log.info("write user=%s tag=%r old=%r new=%r result=%s%s", who, tag.name, old_value, new_value,
                 status.name, f" ({reason})" if reason else "")
