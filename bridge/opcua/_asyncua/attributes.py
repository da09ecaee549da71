"""Touchpoint 2: a slotted AttributeValue (memory per variable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import ua
from asyncua.server.address_space import AttributeValue

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

__all__ = ["TOUCHPOINTS", "AttributeValue", "SlimAttribute"]

# ---- 2. Slim attribute values --------------------------------------------------------------------------------------
# Why: asyncua's AttributeValue is 176 bytes with a dict of datachange callbacks per attribute (x15 per variable);
# the slotted subclass is 112 bytes and creates the dict on first use (most attributes are never monitored).
# Read against asyncua 2.1.0: AttributeValue has exactly value, value_callback, value_setter, datachange_callbacks,
# and asyncua calls value_callback(nodeid, attr) before looking at the stored value.


class SlimAttribute(AttributeValue):
    """asyncua's AttributeValue with slots, and the datachange callback dict created on first use."""

    __slots__ = ("value", "value_callback", "value_setter", "_callbacks")

    def __init__(self, value: ua.DataValue | None) -> None:  # deliberately not calling super(): no dict
        self.value = value
        self.value_callback: Callable[[ua.NodeId, ua.AttributeIds], ua.DataValue] | None = None
        self.value_setter: Callable[..., None] | None = None
        self._callbacks: dict[int, Any] | None = None

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        cbs = self._callbacks
        if cbs is None:
            cbs = self._callbacks = {}
        return cbs


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("2 slim attribute values", AttributeValue, "__init__", ("self", "value")),
    *(
        InstanceAttribute("2 slim attribute values", AttributeValue, name)
        for name in ("value", "value_callback", "value_setter", "datachange_callbacks")
    ),
]
