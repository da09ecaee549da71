"""BridgeStatus: an object in the address space so OPC UA clients can watch the bridge itself.

Object `ns=<bridge ns>;s=BridgeStatus` with variables `BridgeStatus.<Field>`: Connected, State, LastSuccessfulPoll,
TagCount, PollCycleMs, LateCycles, PollErrors. It is an instance of BridgeStatusType, defined in the bridge's
NodeSet `nodesets/wincc-bridge.NodeSet2.xml` (namespace TYPES_URI; shipped in the package as
bridge/nodesets/), which `load_types` imports with asyncua's XML import before the object is created, so clients
and modelling tools see a typed object (its variables' BrowseNames are in the types namespace).
With several sources each station has its own, under its folder: `ns=<bridge ns>;s=<source>/BridgeStatus` and
`<source>/BridgeStatus.<Field>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

from asyncua import Server, ua

__all__ = ["NODESET", "TYPES_URI", "BridgeStatus", "load_types"]

TYPES_URI = "urn:wincc-opcua-bridge:types"
NODESET = "wincc-bridge.NodeSet2.xml"
_STATUS_TYPE_ID = 1001  # BridgeStatusType in the NodeSet

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
    async def create(cls, server: Server, parent: ua.NodeId, ns: int, prefix: str = "") -> BridgeStatus:
        """Instantiate BridgeStatusType (call `load_types` first): asyncua names the children of a String NodeId
        `<parent>.<BrowseName>`, which are the NodeIds clients already use. `prefix` names a station's own
        (`<source>/`, see bridge/sources.py)."""
        types_ns = await server.get_namespace_index(TYPES_URI)
        status_type = ua.NodeId(_STATUS_TYPE_ID, types_ns)
        await server.get_node(parent).add_object(
            ua.NodeId(f"{prefix}BridgeStatus", ns), ua.QualifiedName("BridgeStatus", ns), objecttype=status_type
        )
        node_ids: dict[str, ua.NodeId] = {}
        now = datetime.now(UTC)
        for name, (vt, default) in _FIELDS.items():
            node_id = ua.NodeId(f"{prefix}BridgeStatus.{name}", ns)
            if default is not None:
                dv = ua.DataValue(ua.Variant(default, vt), SourceTimestamp=now, ServerTimestamp=now)
                await server.write_attribute_value(node_id, dv)
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


async def load_types(server: Server) -> list[ua.NodeId]:
    """Import the bridge's NodeSet (BridgeStatusType) into the server; its namespace is registered on the way."""
    nodeset = resources.files("bridge").joinpath("nodesets", NODESET)
    with resources.as_file(nodeset) as path:
        return await server.import_xml(str(path))
