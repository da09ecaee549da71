"""Touchpoint 1: the address space's node dict, written directly (bulk node building)."""

from __future__ import annotations

from asyncua import Server, ua
from asyncua.server.address_space import AddressSpace as UaAddressSpace
from asyncua.server.address_space import NodeData
from asyncua.server.internal_server import InternalServer

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

__all__ = ["TOUCHPOINTS", "NodeData", "UaAddressSpace", "address_space", "node_table"]

# ---- 1. Address space storage -------------------------------------------------------------------------------------
# Why: asyncua's node API (add_variable -> AddNodesItem -> checks) manages a few thousand nodes/s and is quadratic in
# a big folder; the bridge builds 100,000 tags by writing NodeData objects straight into the address space's node
# dict, and removes them from it. Read against asyncua 2.1.0: AddressSpace._nodes: dict[NodeId, NodeData].


def address_space(server: Server) -> UaAddressSpace:
    """The server's address space object (Read, Browse and subscriptions all answer from it)."""
    return server.iserver.aspace


def node_table(server: Server) -> dict[ua.NodeId, NodeData]:
    """The address space's own NodeId -> NodeData dict: whatever is put here is a node, at once."""
    nodes: dict[ua.NodeId, NodeData] = server.iserver.aspace._nodes
    return nodes


TOUCHPOINTS: list[Touchpoint] = [
    InstanceAttribute("1 address space storage", UaAddressSpace, "_nodes"),
    InstanceAttribute("1 address space storage", InternalServer, "aspace"),
    Touchpoint("1 address space storage", NodeData, "__init__", ("self", "nodeid")),
    InstanceAttribute("1 address space storage", NodeData, "attributes"),
    InstanceAttribute("1 address space storage", NodeData, "references"),
]
