"""Touchpoint 3: publishing a value that keeps its last value when Bad."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import ua
from asyncua.server.address_space import AddressSpace as UaAddressSpace
from asyncua.server.address_space import AttributeValue, NodeData

from bridge.opcua._asyncua.touchpoint import Touchpoint

# ---- 3. Publishing a value that keeps its last value when Bad -------------------------------------------------------
# Why: write_attribute_value replaces the value with null whenever the StatusCode is Bad, and the design keeps the
# last value visible with the Bad status; the sync engine stores the DataValue itself and calls the datachange
# callbacks exactly as asyncua does. Read against asyncua 2.1.0: AddressSpace.write_attribute_value sets
# attval.value, clears value_callback, then awaits callback(handle, dv) for each of attval.datachange_callbacks.


def store_value(node: NodeData, dv: ua.DataValue) -> AttributeValue:
    """Make `dv` the node's Value as is (no null-on-Bad); returns the attribute, whose callbacks the caller awaits."""
    attval = node.attributes[ua.AttributeIds.Value]
    attval.value = dv
    attval.value_callback = None
    return attval


def datachange_callbacks(attval: AttributeValue) -> list[tuple[int, Callable[..., Any]]]:
    """(handle, callback) of every monitored item on an attribute, as asyncua calls them: `await callback(handle,
    dv)`. A copy: a callback may delete items."""
    if getattr(attval, "_callbacks", False) is None:  # never monitored: do not make it an empty dict to say so
        return []
    return list(attval.datachange_callbacks.items())


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("3 publishing a value", UaAddressSpace, "write_attribute_value", ("self", "nodeid", "attr", "value")),
    Touchpoint(
        "3 publishing a value", UaAddressSpace, "add_datachange_callback", ("self", "nodeid", "attr", "callback")
    ),
    Touchpoint("3 publishing a value", UaAddressSpace, "delete_datachange_callback", ("self", "handle")),
]
