"""Condition instances in the address space, and the references of the notifier chain.

One AlarmConditionType object per condition the bridge holds:
- NodeId `ns=<opcua.namespace_uri>/alarms;s=<WinCC alarm id>`; its children `s=<alarm id>#<field path>` (e.g.
  `1042#AckedState/Id`), so a child can be found from its NodeId alone (the path never contains "#").
- BrowseName/DisplayName the ConditionName (`<WinCC class> <alarm id>`); a child of its source tag by HasCondition,
  or of the WinCC root when the alarm names no tag the bridge serves.
- The fields of Part 9 as Variables (EventId, Retain, EnabledState/Id, AckedState/Id, ActiveState/Id, Quality,
  Comment, ... and the `WinCCAlarmId` property). Their values are read from the condition's last event (a value
  callback), so they always agree with what subscribers were sent; they are not themselves monitored for data
  changes (a client follows a condition through its events).
- Its own Acknowledge and AddComment method nodes (UaExpert calls these as well as the type's i=9111/i=9029);
  Enable and Disable are the type's nodes, referenced.
The nodes are written straight into asyncua's node store (as the address space builder does for tags): asyncua's
node API manages a few thousand nodes/s, and a plant may raise thousands of alarms in one poll. Attributes that
are equal for every condition's child of one name are one shared object.

Notifier chain (Part 3 7.16/7.17, Part 9 4.11): Server -HasNotifier-> WinCC root -HasNotifier-> each folder down
to the source's folder -HasEventSource-> source tag -HasCondition-> condition. Every folder is an event notifier
(EventNotifier SubscribeToEvents), so a client may subscribe to any area.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from asyncua import ua

from bridge.opcua._asyncua import AttributeValue, NodeData
from bridge.opcua.alarms.events import EventRecord

__all__ = ["ConditionNodes", "child_id"]

_A = ua.AttributeIds
_VT = ua.VariantType
O = ua.ObjectIds
_SUBSCRIBE = ua.EventNotifier.SubscribeToEvents.mask


_NIDS: dict[int, ua.NodeId] = {}


def _nid(i: int) -> ua.NodeId:
    """Standard NodeIds, made once each (building thousands of conditions makes millions of references)."""
    node_id = _NIDS.get(i)
    if node_id is None:
        node_id = _NIDS[i] = ua.NodeId(i)
    return node_id


@dataclass(frozen=True)
class _Child:
    path: str
    data_type: int
    type_def: int
    parent: str = ""  # "" = the condition itself

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


_P, _C2, _CV = O.PropertyType, O.TwoStateVariableType, O.ConditionVariableType
CHILDREN: tuple[_Child, ...] = (
    _Child("EventId", O.ByteString, _P),
    _Child("EventType", O.NodeId, _P),
    _Child("SourceNode", O.NodeId, _P),
    _Child("SourceName", O.String, _P),
    _Child("Time", O.UtcTime, _P),
    _Child("ReceiveTime", O.UtcTime, _P),
    _Child("Message", O.LocalizedText, _P),
    _Child("Severity", O.UInt16, _P),
    _Child("ConditionClassId", O.NodeId, _P),
    _Child("ConditionClassName", O.LocalizedText, _P),
    _Child("ConditionName", O.String, _P),
    _Child("BranchId", O.NodeId, _P),
    _Child("Retain", O.Boolean, _P),
    _Child("EnabledState", O.LocalizedText, _C2),
    _Child("EnabledState/Id", O.Boolean, _P, "EnabledState"),
    _Child("Quality", O.StatusCode, _CV),
    _Child("Quality/SourceTimestamp", O.UtcTime, _P, "Quality"),
    _Child("LastSeverity", O.UInt16, _CV),
    _Child("LastSeverity/SourceTimestamp", O.UtcTime, _P, "LastSeverity"),
    _Child("Comment", O.LocalizedText, _CV),
    _Child("Comment/SourceTimestamp", O.UtcTime, _P, "Comment"),
    _Child("ClientUserId", O.String, _P),
    _Child("AckedState", O.LocalizedText, _C2),
    _Child("AckedState/Id", O.Boolean, _P, "AckedState"),
    _Child("ActiveState", O.LocalizedText, _C2),
    _Child("ActiveState/Id", O.Boolean, _P, "ActiveState"),
    _Child("InputNode", O.NodeId, _P),
    _Child("SuppressedOrShelved", O.Boolean, _P),
    _Child("WinCCAlarmId", O.String, _P),
)
METHODS = ("Acknowledge", "AddComment")
_SHARED_METHODS = (O.ConditionType_Enable, O.ConditionType_Disable)
# the last "#"-part of every child NodeId (a child path's last segment after "#": "AckedState/Id", "Acknowledge"...)
CHILD_SUFFIXES = frozenset([c.path for c in CHILDREN] + [p for m in METHODS for p in (m, m + "/InputArguments")])
_INPUT_ARGUMENTS, _INPUT_ARGUMENTS_TEXT = ua.QualifiedName("InputArguments", 0), ua.LocalizedText("InputArguments")
_INPUTS = {
    "Acknowledge": [
        ("EventId", O.ByteString, "the EventId of the event being acknowledged"),
        ("Comment", O.LocalizedText, "operator's comment, sent to WinCC"),
    ],
    "AddComment": [
        ("EventId", O.ByteString, "the EventId of the event being commented"),
        ("Comment", O.LocalizedText, "the comment"),
    ],
}


def _has_ref(node: NodeData, ref_type: int, target: ua.NodeId, forward: bool) -> bool:
    type_id = _nid(ref_type)
    return any(r.NodeId == target and r.ReferenceTypeId == type_id and r.IsForward == forward for r in node.references)


def child_id(alarm_id: str, path: str, ns: int) -> ua.NodeId:
    return ua.NodeId(f"{alarm_id}#{path}", ns)  # a str identifier is a String NodeId (and skips a slow check)


def _attr(value: ua.DataValue | None = None) -> AttributeValue:
    return AttributeValue(value)


def _dv(value: Any, vt: ua.VariantType) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, vt))


def _ref_to(ref_type: int, forward: bool, node_id: ua.NodeId, node: NodeData) -> ua.ReferenceDescription:
    """A reference to an existing node, described by its own BrowseName, DisplayName and NodeClass."""
    attrs = node.attributes
    return _ref(
        ref_type,
        forward,
        node_id,
        attrs[_A.BrowseName].value.Value.Value,
        attrs[_A.DisplayName].value.Value.Value,
        attrs[_A.NodeClass].value.Value.Value,
    )


def _ref(
    ref_type: int,
    forward: bool,
    node_id: ua.NodeId,
    bname: ua.QualifiedName,
    dname: ua.LocalizedText,
    node_class: ua.NodeClass,
    type_def: ua.NodeId | None = None,
) -> ua.ReferenceDescription:
    return ua.ReferenceDescription(
        ReferenceTypeId=_nid(ref_type),
        IsForward=forward,
        NodeId=node_id,
        BrowseName=bname,
        DisplayName=dname,
        NodeClass=node_class,
        TypeDefinition=type_def or ua.NodeId(),
    )


class ConditionNodes:
    """Creates, serves and removes condition instance nodes. `record_of(alarm_id)` gives the last event."""

    def __init__(self, aspace: Any, ns: int, record_of: Callable[[str], EventRecord | None]) -> None:
        self._aspace = aspace
        self.ns = ns
        self._record_of = record_of
        self._node_id_attr = _attr()
        self._node_id_attr.value_callback = lambda nid, _a: _dv(nid, _VT.NodeId)
        self._value_attr = _attr()
        self._value_attr.value_callback = self._value
        self._shared: dict[str, dict[Any, AttributeValue]] = {}  # child path -> its attribute dict
        self._type_refs: dict[int, ua.ReferenceDescription] = {}
        self._linked: set[tuple[ua.NodeId, int, ua.NodeId]] = set()
        self._plan: list[tuple[Any, ...]] | None = None
        self._recheck = False  # link() looks for existing references (only after a model change)
        self._method_refs: list[ua.ReferenceDescription] | None = None
        # attributes every condition object has alike (BrowseName and DisplayName are its own)
        self._object_attrs = {
            _A.NodeId: self._node_id_attr,
            _A.NodeClass: _attr(_dv(ua.NodeClass.Object, _VT.Int32)),
            _A.Description: _attr(_dv(ua.LocalizedText(), _VT.LocalizedText)),
            _A.WriteMask: _attr(_dv(0, _VT.UInt32)),
            _A.UserWriteMask: _attr(_dv(0, _VT.UInt32)),
            _A.EventNotifier: _attr(_dv(0, _VT.Byte)),
        }

    # ---- values -------------------------------------------------------------------------------------------------
    def _value(self, node_id: ua.NodeId, _attr_id: Any) -> ua.DataValue:
        alarm_id, _, path = str(node_id.Identifier).rpartition("#")
        record = self._record_of(alarm_id)
        if record is None:
            return ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown))
        return ua.DataValue(record.fields.get(path, ua.Variant()))

    # ---- building -----------------------------------------------------------------------------------------------
    def _type_ref(self, type_id: int) -> ua.ReferenceDescription:
        ref = self._type_refs.get(type_id)
        if ref is None:
            node = self._aspace[_nid(type_id)]
            a = node.attributes
            ref = self._type_refs[type_id] = _ref(
                O.HasTypeDefinition,
                True,
                _nid(type_id),
                a[_A.BrowseName].value.Value.Value,
                a[_A.DisplayName].value.Value.Value,
                a[_A.NodeClass].value.Value.Value,
            )
        return ref

    def _child_attrs(self, child: _Child) -> dict[Any, AttributeValue]:
        attrs = self._shared.get(child.path)
        if attrs is None:
            ns = self.ns if child.name == "WinCCAlarmId" else 0
            attrs = self._shared[child.path] = {
                _A.NodeId: self._node_id_attr,
                _A.NodeClass: _attr(_dv(ua.NodeClass.Variable, _VT.Int32)),
                _A.BrowseName: _attr(_dv(ua.QualifiedName(child.name, ns), _VT.QualifiedName)),
                _A.DisplayName: _attr(_dv(ua.LocalizedText(child.name), _VT.LocalizedText)),
                _A.Description: _attr(_dv(ua.LocalizedText(), _VT.LocalizedText)),
                _A.WriteMask: _attr(_dv(0, _VT.UInt32)),
                _A.UserWriteMask: _attr(_dv(0, _VT.UInt32)),
                _A.Value: self._value_attr,
                _A.DataType: _attr(_dv(_nid(child.data_type), _VT.NodeId)),
                _A.ValueRank: _attr(_dv(ua.ValueRank.Scalar, _VT.Int32)),
                _A.ArrayDimensions: _attr(_dv([], _VT.UInt32)),
                _A.AccessLevel: _attr(_dv(ua.AccessLevel.CurrentRead.mask, _VT.Byte)),
                _A.UserAccessLevel: _attr(_dv(ua.AccessLevel.CurrentRead.mask, _VT.Byte)),
                _A.MinimumSamplingInterval: _attr(_dv(0.0, _VT.Double)),
                _A.Historizing: _attr(_dv(False, _VT.Boolean)),
            }
        return attrs

    def _method_attrs(self, name: str) -> dict[Any, AttributeValue]:
        key = "()" + name
        attrs = self._shared.get(key)
        if attrs is None:
            attrs = self._shared[key] = {
                _A.NodeId: self._node_id_attr,
                _A.NodeClass: _attr(_dv(ua.NodeClass.Method, _VT.Int32)),
                _A.BrowseName: _attr(_dv(ua.QualifiedName(name, 0), _VT.QualifiedName)),
                _A.DisplayName: _attr(_dv(ua.LocalizedText(name), _VT.LocalizedText)),
                _A.Description: _attr(_dv(ua.LocalizedText(), _VT.LocalizedText)),
                _A.WriteMask: _attr(_dv(0, _VT.UInt32)),
                _A.UserWriteMask: _attr(_dv(0, _VT.UInt32)),
                _A.Executable: _attr(_dv(True, _VT.Boolean)),
                _A.UserExecutable: _attr(_dv(True, _VT.Boolean)),
            }
            args = [
                ua.Argument(
                    Name=n,
                    DataType=_nid(t),
                    ValueRank=ua.ValueRank.Scalar,
                    ArrayDimensions=[],
                    Description=ua.LocalizedText(d),
                )
                for n, t, d in _INPUTS[name]
            ]
            self._shared[key + "#in"] = {
                **self._child_attrs(_Child("InputArguments", O.Argument, _P)),
                _A.Value: _attr(ua.DataValue(ua.Variant(args, _VT.ExtensionObject, is_array=True))),
                _A.ValueRank: _attr(_dv(ua.ValueRank.OneDimension, _VT.Int32)),
                _A.ArrayDimensions: _attr(_dv([0], _VT.UInt32)),
            }
        return attrs

    def _build_plan(self) -> list[tuple[Any, ...]]:
        """Per child, everything that is the same for every condition (computed once)."""
        plan = []
        for child in CHILDREN:
            attrs = self._child_attrs(child)
            bname, dname = attrs[_A.BrowseName].value.Value.Value, attrs[_A.DisplayName].value.Value.Value
            is_property = child.type_def == _P
            plan.append(
                (
                    child.path,
                    child.parent,
                    attrs,
                    is_property,
                    bname,
                    dname,
                    _nid(O.HasProperty if is_property else O.HasComponent),
                    _nid(child.type_def),
                    self._type_ref(child.type_def),
                )
            )
        return plan

    def add(self, alarm_id: str, name: str, source: ua.NodeId) -> ua.NodeId:
        """Create the condition's nodes (if absent) under `source`; return the condition's NodeId."""
        cond_id = ua.NodeId(alarm_id, self.ns)
        if cond_id in self._aspace:
            return cond_id
        if self._plan is None:
            self._plan = self._build_plan()
        bname, dname = ua.QualifiedName(name, self.ns), ua.LocalizedText(name)
        node = NodeData(cond_id)
        node.attributes = {
            **self._object_attrs,
            _A.BrowseName: _attr(_dv(bname, _VT.QualifiedName)),
            _A.DisplayName: _attr(_dv(dname, _VT.LocalizedText)),
        }
        refs = node.references
        src = self._aspace.get(source)
        condition_type = _nid(O.AlarmConditionType)
        if src is not None:
            refs.append(_ref_to(O.HasCondition, False, source, src))
            src.references.append(
                _ref(O.HasCondition, True, cond_id, bname, dname, ua.NodeClass.Object, condition_type)
            )
        refs.append(self._type_ref(O.AlarmConditionType))
        up = {"": _ref(O.HasComponent, False, cond_id, bname, dname, ua.NodeClass.Object, condition_type)}
        up_property = {"": _ref(O.HasProperty, False, cond_id, bname, dname, ua.NodeClass.Object, condition_type)}
        kids: dict[str, NodeData] = {"": node}
        prefix, ns, variable = alarm_id + "#", self.ns, ua.NodeClass.Variable
        for path, parent, attrs, is_property, c_bname, c_dname, link, type_def, type_ref in self._plan:
            kid = NodeData(ua.NodeId(prefix + path, ns))
            kid.attributes = attrs
            kid.references = [(up_property if is_property else up)[parent], type_ref]
            kids[parent].references.append(
                ua.ReferenceDescription(
                    ReferenceTypeId=link,
                    IsForward=True,
                    NodeId=kid.nodeid,
                    BrowseName=c_bname,
                    DisplayName=c_dname,
                    NodeClass=variable,
                    TypeDefinition=type_def,
                )
            )
            if not is_property:
                up[path] = _ref(O.HasComponent, False, kid.nodeid, c_bname, c_dname, variable, type_def)
                up_property[path] = _ref(O.HasProperty, False, kid.nodeid, c_bname, c_dname, variable, type_def)
            kids[path] = kid
        for method in METHODS:
            m = NodeData(child_id(alarm_id, method, self.ns))
            m.attributes = self._method_attrs(method)
            inputs = NodeData(child_id(alarm_id, method + "/InputArguments", self.ns))
            inputs.attributes = self._shared["()" + method + "#in"]
            m_bname, m_dname = m.attributes[_A.BrowseName].value.Value.Value, ua.LocalizedText(method)
            m.references = [
                up[""],
                _ref(O.HasProperty, True, inputs.nodeid, _INPUT_ARGUMENTS, _INPUT_ARGUMENTS_TEXT, variable, _nid(_P)),
            ]
            inputs.references = [
                _ref(O.HasProperty, False, m.nodeid, m_bname, m_dname, ua.NodeClass.Method),
                self._type_ref(_P),
            ]
            refs.append(_ref(O.HasComponent, True, m.nodeid, m_bname, m_dname, ua.NodeClass.Method))
            kids[method] = m
            kids[method + "/InputArguments"] = inputs
        refs.extend(self._shared_method_refs())
        for kid in kids.values():
            self._aspace[kid.nodeid] = kid
        return cond_id

    def _shared_method_refs(self) -> list[ua.ReferenceDescription]:
        if self._method_refs is None:
            self._method_refs = []
            for ident in _SHARED_METHODS:
                shared = self._aspace.get(_nid(ident))
                if shared is not None:
                    a = shared.attributes
                    self._method_refs.append(
                        _ref(
                            O.HasComponent,
                            True,
                            shared.nodeid,
                            a[_A.BrowseName].value.Value.Value,
                            a[_A.DisplayName].value.Value.Value,
                            ua.NodeClass.Method,
                        )
                    )
        return self._method_refs

    def remove(self, alarm_id: str, source: ua.NodeId) -> None:
        cond_id = ua.NodeId(alarm_id, self.ns)
        if self._aspace.get(cond_id) is None:
            return
        for path in [c.path for c in CHILDREN] + [p for m in METHODS for p in (m, m + "/InputArguments")]:
            node_id = child_id(alarm_id, path, self.ns)
            if node_id in self._aspace:
                del self._aspace[node_id]
        del self._aspace[cond_id]
        src = self._aspace.get(source)
        if src is not None:
            src.references[:] = [
                r for r in src.references if not (r.NodeId == cond_id and r.ReferenceTypeId == _nid(O.HasCondition))
            ]

    def attach(self, alarm_id: str, old_source: ua.NodeId, source: ua.NodeId) -> None:
        """Hang an existing condition under `source` (HasCondition both ways), e.g. after its tag was rebuilt."""
        cond = self._aspace.get(ua.NodeId(alarm_id, self.ns))
        if cond is None:
            return
        has_condition = _nid(O.HasCondition)
        old = self._aspace.get(old_source)
        if old is not None and old_source != source:
            old.references[:] = [
                r for r in old.references if not (r.NodeId == cond.nodeid and r.ReferenceTypeId == has_condition)
            ]
        cond.references[:] = [r for r in cond.references if r.ReferenceTypeId != has_condition]
        src = self._aspace.get(source)
        if src is None:
            return
        c = cond.attributes
        cond.references.insert(0, _ref_to(O.HasCondition, False, source, src))
        if not any(r.NodeId == cond.nodeid and r.ReferenceTypeId == has_condition for r in src.references):
            src.references.append(
                _ref(
                    O.HasCondition,
                    True,
                    cond.nodeid,
                    c[_A.BrowseName].value.Value.Value,
                    c[_A.DisplayName].value.Value.Value,
                    ua.NodeClass.Object,
                    _nid(O.AlarmConditionType),
                )
            )

    def forget_links(self) -> None:
        """After a model change the notifier references are checked again (link() skips what is still there)."""
        self._linked.clear()
        self._recheck = True

    def links_checked(self) -> None:
        self._recheck = False

    # ---- notifier chain -----------------------------------------------------------------------------------------
    def link(self, chain: Iterable[ua.NodeId], source: ua.NodeId | None) -> None:
        """HasNotifier between the chain's successive notifiers (Server, root, folders...), HasEventSource from
        the last to the source tag; each reference once, in both directions."""
        nodes = list(chain)
        pairs = [(a, O.HasNotifier, b) for a, b in pairwise(nodes)]
        if source is not None and nodes and source != nodes[-1]:
            pairs.append((nodes[-1], O.HasEventSource, source))
        for a, ref_type, b in pairs:
            if (a, ref_type, b) in self._linked:
                continue
            na, nb = self._aspace.get(a), self._aspace.get(b)
            if na is None or nb is None:
                continue
            self._linked.add((a, ref_type, b))
            if ref_type == O.HasNotifier:
                self.make_notifier(b)
            # after a model change a side may still have its reference (scanning is only done then: a folder
            # may have thousands of references)
            if not (self._recheck and _has_ref(na, ref_type, b, True)):
                na.references.append(_ref_to(ref_type, True, b, nb))
            if not (self._recheck and _has_ref(nb, ref_type, a, False)):
                nb.references.append(_ref_to(ref_type, False, a, na))

    def make_notifier(self, node_id: ua.NodeId) -> None:
        node = self._aspace.get(node_id)
        if node is None or ua.AttributeIds.EventNotifier not in node.attributes:
            return
        attr = node.attributes[_A.EventNotifier]
        current = attr.value.Value.Value if attr.value is not None and attr.value.Value is not None else 0
        if not (current or 0) & _SUBSCRIBE:
            # a new AttributeValue: the folder's old one may be shared with other folders
            node.attributes[_A.EventNotifier] = _attr(_dv((current or 0) | _SUBSCRIBE, _VT.Byte))
