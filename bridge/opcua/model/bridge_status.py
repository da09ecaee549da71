"""BridgeStatus: an object in the address space so OPC UA clients can watch the bridge itself.

Object `ns=<bridge ns>;s=BridgeStatus` with variables `BridgeStatus.<Field>`: Connected, State, LastSuccessfulPoll,
TagCount, PollCycleMs, LateCycles, PollErrors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

__all__ = ["BridgeStatus"]

VT = ua.VariantType
_FIELDS: dict[str, tuple[ua.VariantType, Any]] = {
    "Connected": (VT.Boolean, False),
    "State": (VT.String, "connecting"),
    "LastSuccessfulPoll": (VT.DateTime, None),
    "TagCount": (VT.UInt32, 0),
    "PollCycleMs": (VT.Double, 0.0),
    "LateCycles": (VT.UInt32, 0),
    "PollErrors": (VT.UInt32, 0),
}


class BridgeStatus:
    def __init__(self, server: Server, node_ids: dict[str, ua.NodeId]) -> None:
        self._server = server
        self._node_ids = node_ids
        self._values: dict[str, Any] = {name: default for name, (_, default) in _FIELDS.items()}

    @classmethod
    async def create(cls, server: Server, parent: ua.NodeId, ns: int) -> BridgeStatus:
        obj = await server.get_node(parent).add_object(ua.NodeId("BridgeStatus", ns), ua.QualifiedName("BridgeStatus", ns))
        node_ids: dict[str, ua.NodeId] = {}
        for name, (vt, default) in _FIELDS.items():
            node_id = ua.NodeId(f"BridgeStatus.{name}", ns)
            value = ua.Variant(default, vt) if default is not None else ua.Variant(None, VT.Null)
            var = await obj.add_variable(node_id, ua.QualifiedName(name, ns), value, varianttype=vt)
            if default is None:
                await var.write_attribute(ua.AttributeIds.DataType, ua.DataValue(ua.Variant(ua.NodeId(vt.value), VT.NodeId)))
            node_ids[name] = node_id
        return cls(server, node_ids)

    def get(self, name: str) -> Any:
        return self._values[name]

    async def update(self, **fields: Any) -> None:
        """Write the fields whose value changed (cheap when nothing did)."""
        now = datetime.now(UTC)
        for name, value in fields.items():
            if self._values.get(name) == value:
                continue
            self._values[name] = value
            vt = _FIELDS[name][0]
            dv = ua.DataValue(ua.Variant(value, vt), SourceTimestamp=now, ServerTimestamp=now)
            await self._server.write_attribute_value(self._node_ids[name], dv)
