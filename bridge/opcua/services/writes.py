"""OPC UA Write -> WinCC REST write, with a true StatusCode per node.

asyncua's PreWrite callback cannot reject one node of a request, so the whole Write is handled here. Per node, in
order: the node exists (BadNodeIdUnknown), the attribute is Value (BadNotWritable), no IndexRange
(BadIndexRangeInvalid: tags are scalars), no StatusCode/timestamps set by the client (BadWriteNotSupported:
WinCC stamps its own), the tag is writable (BadNotWritable), the session's role and write rules allow it
(BadUserAccessDenied), the value converts to the WinCC type (BadTypeMismatch for another type family,
BadOutOfRange for a value the type cannot hold: the rule is in `bridge.opcua.model.types`) and lies inside the
tag's limits (BadOutOfRange). Everything that passes goes to WinCC in one call of the REST client (one batch PUT
for restservice, capped concurrent PUTs for dp); WinCC's answer per tag is the node's StatusCode, and Good only
after WinCC confirmed. A WinCC that does not answer in time (wincc.timeouts.write_s, or the request's TimeoutHint
if shorter) gives BadTimeout, never a hung client.

Floats: NaN and +/-infinity are refused with BadOutOfRange for every tag, with or without limits. A NaN is
never inside an EURange, and WinCC's REST API is JSON, which has no NaN or infinity (the encoder would send null,
and in a restservice batch one such item could spoil the whole PUT); a plant setpoint of NaN is a client bug.

Nodes that are not WinCC tags (server objects, folders, BridgeStatus, a tag's EURange/EngineeringUnits
properties) are checked here per node, because asyncua skips every check for an Admin user: the attribute must
exist, Value needs CurrentWrite in the node's AccessLevel (ValueForVariableType in the WriteMask for a
VariableType), any other attribute needs its bit in the node's WriteMask (BadNotWritable otherwise); then the
session must be an admin (BadUserAccessDenied) and no IndexRange given (BadWriteNotSupported: asyncua would
write the whole value). What passes is written through asyncua. The bridge's own nodes are built read-only
(AccessLevel CurrentRead, WriteMask 0), so in practice only standard server nodes that allow it are writable.

Size: a String longer than `opcua.limits.max_string_length` characters, a ByteString longer than
`max_byte_string_length` bytes or an array longer than `max_array_length` (or holding such an element) is refused
with BadOutOfRange before anything else, for every node (advertised as ServerCapabilities MaxStringLength,
MaxByteStringLength and MaxArrayLength); audit lines show at most `_AUDIT_CHARS` characters of a value.

A NodeId given twice in one request is written once per occurrence, in order. Every write to an existing node is
logged (logger `bridge.audit.write`): user, tag (or node and attribute), old value, new value, result; and emitted
as an AuditWriteUpdateEventType on the Server object (services/audit.py), refused writes included.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from asyncua import Server, ua

from bridge.config import OpcUaConfig, OpcUaLimitsConfig, Role
from bridge.opcua._asyncua import InternalSession, address_space, request_deadline, write_as
from bridge.opcua.model.status import write_error_to_status
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import OutOfRange, to_wincc
from bridge.opcua.security.users import BridgeUser, may_write, role_of
from bridge.opcua.services.audit import AuditEvents
from bridge.wincc.client import WinCCClient
from bridge.wincc.models import TagInfo, WriteError, WriteResult

__all__ = ["WriteRouter"]

log = logging.getLogger("bridge.audit.write")

S = ua.StatusCodes
A = ua.AttributeIds
_VALUE = A.Value
# WriteMask bits (Part 3, 5.2.7) of the attributes a client may ask to write; asyncua's enum stops at bit 21
_WRITE_MASK_BIT: dict[int, int] = {
    getattr(A, m.name): m.value for m in ua.WriteMask if hasattr(A, m.name) and m.name != "ValueForVariableType"
} | {A.DataTypeDefinition: 22, A.RolePermissions: 23, A.AccessRestrictions: 24, A.AccessLevelEx: 25}


_AUDIT_CHARS = 200
_CAPABILITIES = {  # ServerCapabilities property -> the limit it advertises
    ua.ObjectIds.Server_ServerCapabilities_MaxStringLength: "max_string_length",
    ua.ObjectIds.Server_ServerCapabilities_MaxByteStringLength: "max_byte_string_length",
    ua.ObjectIds.Server_ServerCapabilities_MaxArrayLength: "max_array_length",
}


def _code(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)


def _oversized(value: Any, limits: OpcUaLimitsConfig) -> bool:
    """A String, ByteString or array (at any depth) beyond the configured limits."""
    if isinstance(value, str):
        return len(value) > limits.max_string_length
    if isinstance(value, (bytes, bytearray)):
        return len(value) > limits.max_byte_string_length
    if isinstance(value, (list, tuple)):
        return len(value) > limits.max_array_length or any(_oversized(v, limits) for v in value)
    if isinstance(value, ua.LocalizedText):
        return _oversized(value.Text, limits) or _oversized(value.Locale, limits)
    return False


class WriteRouter:
    def __init__(
        self,
        server: Server,
        directory: TagDirectory,
        client: WinCCClient,
        config: OpcUaConfig,
        on_written: Callable[[str, Any], None],
        timeout_s: float = 10.0,
        audit: AuditEvents | None = None,
    ) -> None:
        # `config.write_rules` reach this router through the session's user (set at login, see users.may_write),
        # so Write and UserAccessLevel answer from the same rule
        self._server = server
        self._aspace = address_space(server)
        self._directory = directory
        self._client = client
        self._on_written = on_written
        self._timeout_s = timeout_s
        self._events = audit
        # client writes by result (StatusCode name), for /metrics: wincc_bridge_client_writes_total{result=...}
        self.results: Counter[str] = Counter()
        self._limits = config.limits

    async def advertise_limits(self) -> None:
        """ServerCapabilities MaxStringLength / MaxByteStringLength / MaxArrayLength say what a Write may carry."""
        for ident, key in _CAPABILITIES.items():
            node_id = ua.NodeId(ident)
            if node_id in self._aspace:
                variant = ua.Variant(getattr(self._limits, key), ua.VariantType.UInt32)
                await self._server.write_attribute_value(node_id, ua.DataValue(variant))

    # ---- per-node checks ----------------------------------------------------------------------------------
    def _check(self, user: object, wv: ua.WriteValue, tag: TagInfo) -> tuple[ua.StatusCode | None, Any]:
        if wv.AttributeId != _VALUE:
            return _code(S.BadNotWritable), None
        if wv.IndexRange:
            return _code(S.BadIndexRangeInvalid), None
        dv = wv.Value
        if (
            dv.SourceTimestamp is not None
            or dv.ServerTimestamp is not None
            or (dv.StatusCode is not None and dv.StatusCode.value != 0)
        ):
            return _code(S.BadWriteNotSupported), None
        if not tag.writable:
            return _code(S.BadNotWritable), None
        if not may_write(user, tag.name):
            return _code(S.BadUserAccessDenied), None
        if dv.Value is None:
            return _code(S.BadTypeMismatch), None
        try:
            value = to_wincc(tag.data_type, dv.Value)
        except TypeError:
            return _code(S.BadTypeMismatch), None
        except OutOfRange:
            return _code(S.BadOutOfRange), None
        if isinstance(value, float) and not math.isfinite(value):
            return _code(S.BadOutOfRange), None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (tag.low is not None and value < tag.low) or (tag.high is not None and value > tag.high):
                return _code(S.BadOutOfRange), None
        return None, value

    def _check_other(self, user: object, wv: ua.WriteValue) -> ua.StatusCode | None:
        """A node that is not a WinCC tag: the node's own AccessLevel/WriteMask, then the admin role."""
        attr = wv.AttributeId
        if not self._aspace.read_attribute_value(wv.NodeId, attr).StatusCode.is_good():
            return _code(S.BadAttributeIdInvalid)
        node_class = self._attribute(wv.NodeId, A.NodeClass)
        if attr == _VALUE and node_class == ua.NodeClass.Variable:
            writable = _bit(self._attribute(wv.NodeId, A.AccessLevel), ua.AccessLevel.CurrentWrite.value)
        elif attr == _VALUE and node_class == ua.NodeClass.VariableType:
            writable = _bit(self._attribute(wv.NodeId, A.WriteMask), ua.WriteMask.ValueForVariableType.value)
        else:
            bit = _WRITE_MASK_BIT.get(attr)
            writable = bit is not None and _bit(self._attribute(wv.NodeId, A.WriteMask), bit)
        if not writable:
            return _code(S.BadNotWritable)
        if role_of(user) is not Role.admin:
            return _code(S.BadUserAccessDenied)
        if wv.IndexRange:
            return _code(S.BadWriteNotSupported)
        return None

    def _attribute(self, node_id: ua.NodeId, attr: int) -> Any:
        """The stored value, whatever its status (a tag's last value under BadCommunicationError is still the old
        value an audit line wants); None where the attribute does not exist."""
        variant = self._variant(node_id, attr)
        return variant.Value if variant is not None else None

    def _variant(self, node_id: ua.NodeId, attr: int) -> ua.Variant | None:
        return self._aspace.read_attribute_value(node_id, attr).Value

    # ---- the Write service ----------------------------------------------------------------------------------
    async def write(self, session: InternalSession, params: ua.WriteParameters) -> list[ua.StatusCode]:
        user = session.user
        results: list[ua.StatusCode | None] = [None] * len(params.NodesToWrite)
        accepted: list[tuple[int, TagInfo, Any]] = []
        others: list[int] = []
        for i, wv in enumerate(params.NodesToWrite):
            tag = self._directory.tag_for(wv.NodeId)
            if tag is None and wv.NodeId not in self._aspace:
                results[i] = _code(S.BadNodeIdUnknown)
                continue
            if wv.Value is not None and wv.Value.Value is not None and _oversized(wv.Value.Value.Value, self._limits):
                results[i] = _code(S.BadOutOfRange)
                if tag is not None:
                    await self._audit(user, tag, wv, self._variant(wv.NodeId, wv.AttributeId), results[i])
                else:
                    await self._audit_other(user, wv, results[i])
                continue
            if tag is None:
                if (refused := self._check_other(user, wv)) is not None:
                    results[i] = refused
                    await self._audit_other(user, wv, refused)
                else:
                    others.append(i)
                continue
            status, value = self._check(user, wv, tag)
            if status is not None:
                results[i] = status
                await self._audit(user, tag, wv, self._variant(wv.NodeId, wv.AttributeId), status)
            else:
                accepted.append((i, tag, value))

        if others:
            # checked above, node by node; asyncua's write (as Admin, so it checks nothing more) does the rest
            nodes = [params.NodesToWrite[i] for i in others]
            olds = [self._variant(wv.NodeId, wv.AttributeId) for wv in nodes]
            codes = await write_as(self._server, ua.WriteParameters(NodesToWrite=nodes), user=user)
            for i, wv, old, code in zip(others, nodes, olds, codes, strict=True):
                results[i] = code
                await self._audit_other(user, wv, code, old)

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
            # the old values as they were before WinCC took the write: a poll cycle during the REST call may
            # already bring the new value into the address space
            before = {name: self._variant(params.NodesToWrite[i].NodeId, _VALUE) for name, (i, _, _) in batch.items()}
            outcome = await self._send({name: value for name, (_, _, value) in batch.items()})
            for name, (i, tag, value) in batch.items():
                result = outcome.get(name) or WriteResult(name, WriteError.other, "no answer for this tag")
                results[i] = write_error_to_status(result.error, tag_writable=tag.writable)
                await self._audit(user, tag, params.NodesToWrite[i], before[name], results[i], value, result.reason)
                if result.ok:
                    self._on_written(name, value)
        final = [r if r is not None else _code(S.BadInternalError) for r in results]
        self.results.update(code.name for code in final)
        return final

    async def _send(self, items: dict[str, Any]) -> dict[str, WriteResult]:
        # the client's TimeoutHint, when shorter than wincc.timeouts.write_s: answer before the client gives up
        timeout = self._timeout_s
        if (deadline := request_deadline()) is not None:
            timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            return {n: WriteResult(n, WriteError.timeout, "the request's TimeoutHint had passed") for n in items}
        try:
            return await asyncio.wait_for(self._client.write(items), timeout=timeout)
        except TimeoutError:
            return {n: WriteResult(n, WriteError.timeout, f"no answer from WinCC in {timeout:.3g} s") for n in items}
        except Exception as exc:  # the REST client promises not to raise; if it does, no node is Good
            logging.getLogger(__name__).exception("REST write failed")
            return {n: WriteResult(n, WriteError.unreachable, type(exc).__name__) for n in items}

    async def _audit(
        self,
        user: object,
        tag: TagInfo,
        wv: ua.WriteValue,
        old: ua.Variant | None,
        status: ua.StatusCode,
        sent: Any = None,
        reason: str = "",
    ) -> None:
        new = wv.Value.Value if wv.Value is not None else None
        attribute = "" if wv.AttributeId == _VALUE else f" attribute={_attribute_name(wv.AttributeId)}"
        log.info(
            "write user=%s tag=%r%s old=%s new=%s result=%s%s",
            _who(user),
            tag.name,
            attribute,
            _shown(_plain(old)),
            _shown(_plain(new)),
            status.name,
            f" ({reason})" if reason else "",
        )
        await self._event(user, wv, old, status, f"tag {tag.name}{attribute}")

    async def _audit_other(
        self, user: object, wv: ua.WriteValue, status: ua.StatusCode, old: ua.Variant | None = None
    ) -> None:
        if old is None and not status.is_good():
            old = self._variant(wv.NodeId, wv.AttributeId)
        new = wv.Value.Value if wv.Value is not None else None
        attribute = _attribute_name(wv.AttributeId)
        log.info(
            "write user=%s node=%s attribute=%s old=%s new=%s result=%s",
            _who(user),
            wv.NodeId.to_string(),
            attribute,
            _shown(_plain(old)),
            _shown(_plain(new)),
            status.name,
        )
        await self._event(user, wv, old, status, f"node {wv.NodeId.to_string()} attribute {attribute}")

    async def _event(
        self, user: object, wv: ua.WriteValue, old: ua.Variant | None, status: ua.StatusCode, what: str
    ) -> None:
        if self._events is not None:
            await self._events.write_update(
                user=_who(user),
                node_id=wv.NodeId,
                attribute_id=wv.AttributeId,
                index_range=wv.IndexRange,
                old=old,
                new=wv.Value.Value if wv.Value is not None else None,
                status=status,
                what=what,
            )


def _plain(variant: ua.Variant | None) -> Any:
    return variant.Value if variant is not None else None


def _shown(value: Any) -> str:
    """repr() of a value for an audit line, cut to _AUDIT_CHARS (a client may write megabytes)."""
    text = repr(value)
    return text if len(text) <= _AUDIT_CHARS else f"{text[:_AUDIT_CHARS]}...({len(text)} chars)"


def _who(user: object) -> str:
    return user.label if isinstance(user, BridgeUser) else "unknown"


def _attribute_name(attr: int) -> str:
    try:
        return ua.AttributeIds(attr).name
    except ValueError:
        return str(attr)


def _bit(mask: Any, bit: int) -> bool:
    return isinstance(mask, int) and bool(mask >> bit & 1)
