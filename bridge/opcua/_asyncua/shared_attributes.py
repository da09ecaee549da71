"""Touchpoint 16: attributes a node shares with others of its kind, copied on write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from asyncua import ua
from asyncua.server.address_space import AddressSpace as UaAddressSpace
from asyncua.server.address_space import AttributeValue, NodeData

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

# ---- 16. Attributes a node shares with others of its kind, copied on write ---------------------------------------
# Why: 11 of a tag Variable's 15 attributes (NodeId, NodeClass, DataType, ValueRank, AccessLevel, WriteMask...) are
# the same for every tag of its kind; as attribute objects of its own (~110 bytes each) in a 15-entry dict they were
# ~1.7 kB of the ~5 kB a tag cost. SharedAttributes holds a node's own attributes and falls back to a template of
# attributes shared by every node of the kind. A shared attribute is handed out as a TemplateAttribute view: reading
# it reads the shared one; whatever changes it (a Write, a value callback or setter, a monitored item's callback)
# first gives the node its own copy, so no change ever reaches another node.
# Read against asyncua 2.1.0: AddressSpace reaches a node's attributes only through `attr in node.attributes`,
# `node.attributes[attr]` and `node.attributes.get(attr)` (read/write_attribute_value, set_attribute_value_callback,
# set_attribute_value_setter, add/delete_datachange_callback, delete_nodes), then reads or sets value,
# value_callback and value_setter of what it got, or reads and fills its datachange_callbacks dict.


class _Callbacks:
    __slots__ = ("value_callback", "value_setter", "_callbacks")
    _callbacks: dict[int, Any] | None

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        cbs = self._callbacks
        if cbs is None:
            cbs = self._callbacks = {}
        return cbs


class LeanAttribute(_Callbacks):
    """SlimAttribute (section 2) without AttributeValue as its base, whose instance-dict support costs 40 bytes per
    object even with slots: 64 bytes. asyncua uses an attribute's four members, never its class."""

    __slots__ = ("value",)

    def __init__(self, value: ua.DataValue | None) -> None:
        self.value = value
        self.value_callback: Callable[[ua.NodeId, ua.AttributeIds], ua.DataValue] | None = None
        self.value_setter: Callable[..., None] | None = None
        self._callbacks: dict[int, Any] | None = None


class NameAttribute(_Callbacks):
    """A BrowseName, DisplayName or Description the node keeps as the bare name (the same object its parent's
    reference holds), its DataValue made on read: 152 bytes less than a stored DataValue and Variant. A Write
    stores the written DataValue as any attribute does."""

    __slots__ = ("_stored",)

    def __init__(self, name: ua.QualifiedName | ua.LocalizedText) -> None:
        self._stored: ua.QualifiedName | ua.LocalizedText | ua.DataValue | None = name
        self.value_callback: Callable[[ua.NodeId, ua.AttributeIds], ua.DataValue] | None = None
        self.value_setter: Callable[..., None] | None = None
        self._callbacks: dict[int, Any] | None = None

    @property
    def value(self) -> ua.DataValue | None:
        stored = self._stored
        if isinstance(stored, ua.QualifiedName):
            return ua.DataValue(ua.Variant(stored, ua.VariantType.QualifiedName))
        if isinstance(stored, ua.LocalizedText):
            return ua.DataValue(ua.Variant(stored, ua.VariantType.LocalizedText))
        return stored

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._stored = value


class SharedAttributes(dict[ua.AttributeIds, Any]):
    """A node's attributes: its own ones (the dict itself) over a template shared with nodes of its kind (never
    changed once a node uses it). Lookups, `in`, iteration and len() see both."""

    __slots__ = ("template",)

    def __init__(self, template: dict[ua.AttributeIds, Any]) -> None:
        super().__init__()
        self.template = template

    def __missing__(self, key: ua.AttributeIds) -> AttributeValue:
        shared = self.template.get(key)
        if shared is None:
            raise KeyError(key)
        return TemplateAttribute(self, key, shared)

    def get(self, key: ua.AttributeIds, default: Any = None) -> Any:
        own = dict.get(self, key)
        if own is not None:
            return own
        shared = self.template.get(key)
        return default if shared is None else TemplateAttribute(self, key, shared)

    def own(self, key: ua.AttributeIds) -> AttributeValue | None:
        """The node's own attribute (not one it shares), or None."""
        return dict.get(self, key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.template

    def keys(self) -> list[ua.AttributeIds]:  # type: ignore[override]
        return [*dict.keys(self), *(k for k in self.template if not dict.__contains__(self, k))]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def values(self) -> list[AttributeValue]:  # type: ignore[override]
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[ua.AttributeIds, AttributeValue]]:  # type: ignore[override]
        return [(k, self[k]) for k in self.keys()]


class TemplateAttribute(AttributeValue):
    """A node's view of a shared attribute: reads go to the shared one, changes to a copy the node gets first."""

    __slots__ = ("_attrs", "_key", "_shared")

    def __init__(self, attrs: SharedAttributes, key: ua.AttributeIds, shared: Any) -> None:
        # deliberately not calling super(): a view has no state of its own
        self._attrs, self._key, self._shared = attrs, key, shared

    def _current(self) -> AttributeValue:
        own = dict.get(self._attrs, self._key)
        return self._shared if own is None else own

    def _own(self) -> AttributeValue:
        own = dict.get(self._attrs, self._key)
        if own is None:
            shared = self._shared
            own = LeanAttribute(shared.value)
            own.value_callback = shared.value_callback
            own.value_setter = shared.value_setter
            dict.__setitem__(self._attrs, self._key, own)
        return own

    @property
    def value(self) -> ua.DataValue | None:
        return self._current().value

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._own().value = value

    @property
    def value_callback(self) -> Any:
        return self._current().value_callback

    @value_callback.setter
    def value_callback(self, callback: Any) -> None:
        self._own().value_callback = callback

    @property
    def value_setter(self) -> Any:
        return self._current().value_setter

    @value_setter.setter
    def value_setter(self, setter: Any) -> None:
        self._own().value_setter = setter

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        # asyncua adds a monitored item's callback to this dict: it must be the node's own
        return self._own().datachange_callbacks


class LeanNode:
    """asyncua's NodeData with slots (not a subclass, for the reason LeanAttribute gives): 64 bytes, not 104."""

    __slots__ = ("nodeid", "attributes", "references", "call")

    def __init__(self, nodeid: ua.NodeId, attributes: Any, references: list[ua.ReferenceDescription]) -> None:
        self.nodeid = nodeid
        self.attributes = attributes
        self.references = references
        self.call: Callable[..., Any] | None = None


def lean_node(nodeid: ua.NodeId, attributes: Any, references: list[ua.ReferenceDescription]) -> NodeData:
    """A node for the address space's node table, which asyncua types as NodeData and uses by its four members."""
    return cast(NodeData, LeanNode(nodeid, attributes, references))


def own_copy(attr: AttributeValue) -> AttributeValue:
    """`attr` itself, or for a view of a shared attribute a copy another node can own."""
    if not isinstance(attr, TemplateAttribute):
        return attr
    copy = LeanAttribute(attr.value)
    copy.value_callback, copy.value_setter = attr.value_callback, attr.value_setter
    return copy


TOUCHPOINTS: list[Touchpoint] = [
    *(
        Touchpoint("15 shared attributes", UaAddressSpace, name, params)
        for name, params in (
            ("read_attribute_value", ("self", "nodeid", "attr")),
            ("write_attribute_value", ("self", "nodeid", "attr", "value")),
            ("set_attribute_value_callback", ("self", "nodeid", "attr", "callback")),
            ("set_attribute_value_setter", ("self", "nodeid", "attr", "setter")),
            ("add_datachange_callback", ("self", "nodeid", "attr", "callback")),
            ("delete_datachange_callback", ("self", "handle")),
        )
    ),
    *(InstanceAttribute("15 shared attributes", NodeData, name) for name in ("nodeid", "attributes", "references")),
    Touchpoint("15 shared attributes", NodeData, "__init__", ("self", "nodeid")),
]
