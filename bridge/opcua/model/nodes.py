"""The OPC UA nodes of the tag model, made as the objects asyncua itself stores (see address_space.py for why):
folder objects, tag variables with their AnalogItem properties, and the references between them. Values that many
nodes share (NodeClass, AccessLevel, the initial BadWaitingForInitialData value...) are made once and shared:
asyncua replaces an attribute's DataValue on write and never mutates one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from bridge.opcua._asyncua import LeanAttribute, NameAttribute, NodeData, SharedAttributes, UaAddressSpace, lean_node
from bridge.opcua._asyncua import SlimAttribute as _Attr
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import VARIANT_TYPES
from bridge.opcua.model.units import eu_information
from bridge.wincc.models import DataType, TagInfo

__all__ = [
    "ANALOG_ITEM_TYPE",
    "BASE_DATA_VARIABLE_TYPE",
    "ENGINEERING_UNITS",
    "EU_RANGE",
    "FOLDER_TYPE",
    "HAS_PROPERTY",
    "HAS_TYPE_DEFINITION",
    "HIERARCHICAL",
    "ORGANIZES",
    "Built",
    "NodeFactory",
    "access_level",
    "display_segment",
    "is_analog",
    "node_id_attr",
    "property_node_id",
    "tag_eu_range",
    "typedef_of",
]

EU_RANGE = "EURange"
ENGINEERING_UNITS = "EngineeringUnits"

_A = ua.AttributeIds
_VT = ua.VariantType
ORGANIZES = ua.NodeId(ua.ObjectIds.Organizes)
HAS_TYPE_DEFINITION = ua.NodeId(ua.ObjectIds.HasTypeDefinition)
HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
HIERARCHICAL = (
    ua.NodeId(ua.ObjectIds.Organizes),
    ua.NodeId(ua.ObjectIds.HasComponent),
    ua.NodeId(ua.ObjectIds.HasProperty),
    ua.NodeId(ua.ObjectIds.HasOrderedComponent),
)
FOLDER_TYPE = ua.NodeId(ua.ObjectIds.FolderType)
BASE_DATA_VARIABLE_TYPE = ua.NodeId(ua.ObjectIds.BaseDataVariableType)
ANALOG_ITEM_TYPE = ua.NodeId(ua.ObjectIds.AnalogItemType)
_PROPERTY_TYPE = ua.NodeId(ua.ObjectIds.PropertyType)
_RANGE_TYPE = ua.NodeId(ua.ObjectIds.Range)
_EU_INFORMATION_TYPE = ua.NodeId(ua.ObjectIds.EUInformation)
_BAD_WAITING = ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
_BAD_NODE_UNKNOWN = ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)

_NUMERIC = frozenset(
    {
        DataType.int8,
        DataType.int16,
        DataType.int32,
        DataType.int64,
        DataType.uint8,
        DataType.uint16,
        DataType.uint32,
        DataType.uint64,
        DataType.float,
        DataType.double,
    }
)
_FLOAT_MAX = 3.4028234663852886e38
_TYPE_RANGE: dict[DataType, tuple[float, float]] = {
    DataType.int8: (-(2.0**7), 2.0**7 - 1),
    DataType.int16: (-(2.0**15), 2.0**15 - 1),
    DataType.int32: (-(2.0**31), 2.0**31 - 1),
    DataType.int64: (-(2.0**63), 2.0**63),  # nearest doubles; EURange is a pair of doubles
    DataType.uint8: (0.0, 2.0**8 - 1),
    DataType.uint16: (0.0, 2.0**16 - 1),
    DataType.uint32: (0.0, 2.0**32 - 1),
    DataType.uint64: (0.0, 2.0**64),
    DataType.float: (-_FLOAT_MAX, _FLOAT_MAX),
    DataType.double: (-1.7976931348623157e308, 1.7976931348623157e308),
}
_CURRENT_READ = ua.AccessLevel.CurrentRead.mask
_CURRENT_WRITE = ua.AccessLevel.CurrentWrite.mask
_HISTORY_READ = ua.AccessLevel.HistoryRead.mask
_VARIABLE = ua.NodeClass.Variable
_OBJECT = ua.NodeClass.Object
_SCALAR = ua.ValueRank.Scalar


# ---- pure model helpers (also used by nodeset.py) ---------------------------------------------------------------
def display_segment(tag: TagInfo) -> str:
    """BrowseName/DisplayName text of a tag: its own display name if WinCC gave one, else the name without its
    folder path (dp "Plant.Tank1.Level" in folder (Plant, Tank1) -> "Level"), else the whole name."""
    if tag.display_name and tag.display_name != tag.name:
        return tag.display_name
    if tag.folder:
        prefix = ".".join(tag.folder) + "."
        if tag.name.startswith(prefix) and len(tag.name) > len(prefix):
            return tag.name[len(prefix) :]
    return tag.name


def typedef_of(tag: TagInfo) -> ua.NodeId:
    return ANALOG_ITEM_TYPE if is_analog(tag) else BASE_DATA_VARIABLE_TYPE


def is_analog(tag: TagInfo) -> bool:
    """Numeric tags with a unit or a limit are AnalogItemType."""
    return tag.data_type in _NUMERIC and (
        bool(tag.unit and tag.unit.strip()) or tag.low is not None or tag.high is not None
    )


def tag_eu_range(tag: TagInfo) -> ua.Range:
    lo, hi = _TYPE_RANGE.get(tag.data_type, (-math.inf, math.inf))
    return ua.Range(
        Low=float(tag.low) if tag.low is not None else lo, High=float(tag.high) if tag.high is not None else hi
    )


def property_node_id(tag_name: str, prop: str, bridge_ns: int) -> ua.NodeId:
    return ua.NodeId(f"{tag_name}#{prop}", bridge_ns, ua.NodeIdType.String)


def access_level(tag: TagInfo) -> int:
    level = _CURRENT_READ
    if tag.writable:
        level |= _CURRENT_WRITE
    if tag.archived:
        level |= _HISTORY_READ
    return level


def _node_id_attribute(node_id: ua.NodeId, _attr: ua.AttributeIds) -> ua.DataValue:
    # The NodeId attribute is a pure function of the node: computed on read instead of stored (saves ~300 bytes
    # per node); asyncua calls value_callback(nodeid, attr) before looking at the stored value.
    return ua.DataValue(ua.Variant(node_id, _VT.NodeId))


def node_id_attr() -> _Attr:
    attr = _Attr(None)
    attr.value_callback = _node_id_attribute
    return attr


@dataclass(slots=True)
class Built:
    """One tag's nodes before they go into the address space."""

    node: NodeData
    forward: ua.ReferenceDescription  # from the parent folder
    properties: list[NodeData]


class NodeFactory:
    """Makes the nodes of one address space, sharing what can be shared. Adds nothing to the address space."""

    def __init__(self, aspace: UaAddressSpace, directory: TagDirectory, minimum_sampling_interval_ms: float) -> None:
        self._aspace = aspace
        self._directory = directory
        self._min_sampling = float(minimum_sampling_interval_ms)
        self._shared: dict[tuple[Any, ...], ua.DataValue] = {}
        self._typedef_refs: dict[int, ua.ReferenceDescription] = {}
        self._eu_cache: dict[str, ua.EUInformation] = {}
        self._templates: dict[tuple[Any, ...], list[tuple[ua.AttributeIds, ua.DataValue]]] = {}
        self._shared_attrs: dict[tuple[Any, ...], dict[ua.AttributeIds, _Attr]] = {}
        self._node_id_attr = node_id_attr()
        self.no_description = self.dv(ua.LocalizedText(), _VT.LocalizedText)

    def dv(self, value: Any, vtype: ua.VariantType, is_array: bool = False) -> ua.DataValue:
        if isinstance(value, ua.LocalizedText):  # not hashable
            key: tuple[Any, ...] = ("lt", value.Locale, value.Text, vtype, is_array)
        elif isinstance(value, ua.QualifiedName):
            key = ("qn", value.NamespaceIndex, value.Name, vtype, is_array)
        else:
            key = (type(value), value, vtype, is_array)
        dv = self._shared.get(key)
        if dv is None:
            dv = self._shared[key] = ua.DataValue(ua.Variant(value, vtype, is_array=is_array))
        return dv

    def initial_value(self) -> ua.DataValue:
        # one shared DataValue is enough: asyncua replaces the attribute's DataValue on every write
        key = ("initial",)
        dv = self._shared.get(key)
        if dv is None:
            dv = self._shared[key] = ua.DataValue(
                ua.Variant(None, _VT.Null), StatusCode=_BAD_WAITING, ServerTimestamp=datetime.now(UTC)
            )
        return dv

    def typedef_ref(self, type_id: ua.NodeId) -> ua.ReferenceDescription:
        ref = self._typedef_refs.get(type_id.Identifier)
        if ref is None:
            type_node = self._aspace[type_id]
            ref = self._typedef_refs[type_id.Identifier] = ua.ReferenceDescription(
                ReferenceTypeId=HAS_TYPE_DEFINITION,
                IsForward=True,
                NodeId=type_id,
                BrowseName=type_node.attributes[_A.BrowseName].value.Value.Value,
                DisplayName=type_node.attributes[_A.DisplayName].value.Value.Value,
                NodeClass=type_node.attributes[_A.NodeClass].value.Value.Value,
                TypeDefinition=ua.NodeId(),
            )
        return ref

    def eu(self, unit: str) -> ua.EUInformation:
        eu = self._eu_cache.get(unit)
        if eu is None:
            eu = self._eu_cache[unit] = eu_information(unit)
        return eu

    def object_node(
        self,
        node_id: ua.NodeId,
        bname: ua.QualifiedName,
        dname: ua.LocalizedText,
        description: ua.LocalizedText,
        event_notifier: int,
    ) -> NodeData:
        node = NodeData(node_id)
        attrs = node.attributes
        attrs[_A.NodeId] = node_id_attr()
        attrs[_A.BrowseName] = _Attr(ua.DataValue(ua.Variant(bname, _VT.QualifiedName)))
        attrs[_A.NodeClass] = _Attr(self.dv(_OBJECT, _VT.Int32))
        attrs[_A.Description] = _Attr(ua.DataValue(ua.Variant(description, _VT.LocalizedText)))
        attrs[_A.DisplayName] = _Attr(ua.DataValue(ua.Variant(dname, _VT.LocalizedText)))
        attrs[_A.EventNotifier] = _Attr(self.dv(event_notifier, _VT.Byte))
        attrs[_A.UserWriteMask] = _Attr(self.dv(0, _VT.UInt32))
        attrs[_A.WriteMask] = _Attr(self.dv(0, _VT.UInt32))
        return node

    @staticmethod
    def reference(
        ref_type: ua.NodeId, forward: bool, target: NodeData, type_definition: ua.NodeId | None = None
    ) -> ua.ReferenceDescription:
        attrs = target.attributes
        if type_definition is None:
            type_definition = next(
                (r.NodeId for r in target.references if r.IsForward and r.ReferenceTypeId == HAS_TYPE_DEFINITION),
                ua.NodeId(),
            )
        return ua.ReferenceDescription(
            ReferenceTypeId=ref_type,
            IsForward=forward,
            NodeId=target.nodeid,
            BrowseName=attrs[_A.BrowseName].value.Value.Value,
            DisplayName=attrs[_A.DisplayName].value.Value.Value,
            NodeClass=attrs[_A.NodeClass].value.Value.Value,
            TypeDefinition=type_definition,
        )

    def variable_template(
        self, data_type: DataType | None, level: int, historizing: bool, sampling: float
    ) -> list[tuple[ua.AttributeIds, ua.DataValue]]:
        """The attributes every variable of one kind shares, as shared DataValues (same set and types as
        asyncua's add_variable; Value is the shared BadWaitingForInitialData for tags)."""
        key = ("template", data_type, level, historizing, sampling)
        template = self._templates.get(key)
        if template is None:
            dv = self.dv
            template = self._templates[key] = [
                (_A.NodeClass, dv(_VARIABLE, _VT.Int32)),
                (_A.AccessLevel, dv(level, _VT.Byte)),
                (_A.ArrayDimensions, dv(None, _VT.UInt32, True)),
                (_A.Historizing, dv(historizing, _VT.Boolean)),
                (_A.MinimumSamplingInterval, dv(sampling, _VT.Double)),
                (_A.UserAccessLevel, dv(level, _VT.Byte)),
                (_A.UserWriteMask, dv(0, _VT.UInt32)),
                (_A.ValueRank, dv(_SCALAR, _VT.Int32)),
                (_A.WriteMask, dv(0, _VT.UInt32)),
            ]
            if data_type is not None:
                template.append((_A.DataType, dv(ua.NodeId(VARIANT_TYPES[data_type].value, 0), _VT.NodeId)))
                template.append((_A.Value, self.initial_value()))
        return template

    def shared_attributes(
        self,
        key: tuple[Any, ...],
        *parts: list[tuple[ua.AttributeIds, ua.DataValue]],
        own: tuple[ua.AttributeIds, ...] = (),
    ) -> dict[ua.AttributeIds, _Attr]:
        """The attributes every node of one kind shares (with the NodeId computed on read), made once per kind.
        Nodes hold them through SharedAttributes, which gives a node its own copy before anything changes one;
        the shared objects themselves are never changed. Attributes in `own` stay out: each node has its own."""
        shared = self._shared_attrs.get(key)
        if shared is None:
            shared = self._shared_attrs[key] = {_A.NodeId: self._node_id_attr}
            for part in parts:
                shared.update((attr_id, _Attr(value)) for attr_id, value in part if attr_id not in own)
        return shared

    def tag(self, tag: TagInfo, inverse_ref: ua.ReferenceDescription) -> Built:
        """A tag's Variable node, its properties and its parent folder's forward reference to it."""
        ns = self._directory.tag_ns
        node_id = ua.NodeId(tag.name, ns, ua.NodeIdType.String)
        segment = display_segment(tag)
        bname = ua.QualifiedName(segment, ns)
        dname = ua.LocalizedText(segment)
        analog = is_analog(tag)
        type_id = ANALOG_ITEM_TYPE if analog else BASE_DATA_VARIABLE_TYPE

        shared = self.shared_attributes(
            ("tag", tag.data_type, access_level(tag), tag.archived, not tag.description),
            self.variable_template(tag.data_type, access_level(tag), tag.archived, self._min_sampling),
            [] if tag.description else [(_A.Description, self.no_description)],
            own=(_A.Value,),
        )
        attrs = SharedAttributes(shared)
        attrs[_A.BrowseName] = NameAttribute(bname)
        attrs[_A.DisplayName] = NameAttribute(dname)
        if tag.description:
            attrs[_A.Description] = NameAttribute(ua.LocalizedText(tag.description))
        attrs[_A.Value] = LeanAttribute(self.initial_value())
        node = lean_node(node_id, attrs, [inverse_ref, self.typedef_ref(type_id)])
        properties: list[NodeData] = []
        if analog:
            rng = tag_eu_range(tag)
            properties.append(self.property(node, EU_RANGE, ua.Variant(rng, _VT.ExtensionObject), _RANGE_TYPE))
            if tag.unit and tag.unit.strip():
                eu = self.eu(tag.unit.strip())
                properties.append(
                    self.property(node, ENGINEERING_UNITS, ua.Variant(eu, _VT.ExtensionObject), _EU_INFORMATION_TYPE)
                )
        forward = ua.ReferenceDescription(
            ReferenceTypeId=ORGANIZES,
            IsForward=True,
            NodeId=node_id,
            BrowseName=bname,
            DisplayName=dname,
            NodeClass=_VARIABLE,
            TypeDefinition=type_id,
        )
        return Built(node, forward, properties)

    def property(self, owner: NodeData, name: str, value: ua.Variant, data_type: ua.NodeId) -> NodeData:
        tag_name = owner.nodeid.Identifier
        node_id = property_node_id(tag_name, name, self._directory.bridge_ns)
        bname = ua.QualifiedName(name, 0)
        dname = ua.LocalizedText(name)
        dv = self.dv
        shared = self.shared_attributes(
            ("property", name, data_type.Identifier),
            self.variable_template(None, _CURRENT_READ, False, 0.0),
            [
                (_A.BrowseName, dv(bname, _VT.QualifiedName)),
                (_A.DisplayName, dv(dname, _VT.LocalizedText)),
                (_A.Description, self.no_description),
                (_A.DataType, dv(data_type, _VT.NodeId)),
            ],
        )
        attrs = SharedAttributes(shared)
        attrs[_A.Value] = LeanAttribute(ua.DataValue(value))
        owner_attrs = owner.attributes
        to_owner = ua.ReferenceDescription(
            ReferenceTypeId=HAS_PROPERTY,
            IsForward=False,
            NodeId=owner.nodeid,
            BrowseName=owner_attrs[_A.BrowseName].value.Value.Value,
            DisplayName=owner_attrs[_A.DisplayName].value.Value.Value,
            NodeClass=_VARIABLE,
            TypeDefinition=ANALOG_ITEM_TYPE,
        )
        node = lean_node(node_id, attrs, [to_owner, self.typedef_ref(_PROPERTY_TYPE)])
        owner.references.append(
            ua.ReferenceDescription(
                ReferenceTypeId=HAS_PROPERTY,
                IsForward=True,
                NodeId=node_id,
                BrowseName=bname,
                DisplayName=dname,
                NodeClass=_VARIABLE,
                TypeDefinition=_PROPERTY_TYPE,
            )
        )
        return node
