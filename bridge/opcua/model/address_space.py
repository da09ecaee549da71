"""The WinCC tag model as OPC UA nodes, built in bulk straight into asyncua's address space.

asyncua's node API (`add_variable` -> AddNodesItem -> checks -> one reference lookup per attribute) manages a few
thousand nodes/s at best and is quadratic in a big folder (every insert scans the parent's references: 10,000
children of one folder took 30 s here). Instead each node is written as the `NodeData` / `AttributeValue` /
`ReferenceDescription` objects asyncua itself stores, so Read, Browse, TranslateBrowsePaths, subscriptions (the
datachange callbacks live on each node's own attribute object) and `write_attribute_value` see what `add_variable`
would have produced (a unit test compares the two attribute by attribute). 100,000 tags take ~3 s.
The nodes themselves are made in nodes.py (NodeFactory); this module puts them into the address space, keeps
folders, tags and the TagDirectory in step on re-browse, and tells clients about model changes.
How, and what it costs in memory (~1.8 kB per plain tag in the address space against ~7.5 kB with add_variable):
- the attributes that are the same for every tag of a kind (NodeId - computed on read -, NodeClass, DataType,
  ValueRank, AccessLevel, WriteMask...) are shared attribute objects, reached through the node's SharedAttributes
  (bridge/opcua/_asyncua/shared_attributes.py), which gives a node its own copy before a Write, a callback or a
  monitored item changes one; a node owns only its BrowseName, DisplayName, Value (and Description if it has one);
- each attribute of its own is a `SlimAttribute`, asyncua's AttributeValue with slots and a callback dict created
  on first use; DataValues many nodes hold alike (the initial BadWaitingForInitialData value...) are shared too:
  asyncua replaces an attribute's DataValue on write and never mutates one;
- the garbage collector is paused while building (the objects have no cycles; its passes over millions of new
  objects made the build several times slower);
- the build yields to the event loop every few thousand tags and logs progress (count, rate) every second.

Model (docs/architecture.md, "NodeIds"):
- Objects/WinCC                      Object, FolderType, ns=<bridge ns>;s=WinCC, EventNotifier SubscribeToEvents
- WinCC folders                      Object, FolderType, ns=<folder ns>;s=<escaped path> (see model/tags.py)
- a WinCC tag                        Variable, ns=<tag ns>;s=<exact WinCC name>, Organizes from its folder
                                     BaseDataVariableType, or AnalogItemType for numeric tags with a unit or limits
- its AnalogItemType properties      ns=<bridge ns>;s=<exact WinCC name>#EURange and ...#EngineeringUnits
                                     (HasProperty, PropertyType, BrowseName 0:EURange / 0:EngineeringUnits)
Property NodeIds live in the bridge namespace and always contain "#<property>", so they can never collide with a
tag (tag namespace) and never with the bridge's own objects (whose names contain no "#").
BrowseName of folders and tags: <tag ns>:<last segment>; DisplayName the same text.
EURange: the tag's low/high; a missing bound is the data type's own limit (AnalogItemType requires EURange).
AccessLevel: CurrentRead, + CurrentWrite if writable, + HistoryRead if archived (then Historizing = true).
UserAccessLevel stores the same byte; per-user narrowing is the read service's job.
Initial Value: null Variant with BadWaitingForInitialData; asyncua checks later writes against the DataType.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

from bridge.opcua._asyncua import NodeData, SharedAttributes, UaAddressSpace, address_space, node_table, own_copy
from bridge.opcua.model.nodes import (
    ENGINEERING_UNITS,
    EU_RANGE,
    FOLDER_TYPE,
    HAS_PROPERTY,
    HIERARCHICAL,
    ORGANIZES,
    Built,
    NodeFactory,
    access_level,
    display_segment,
    is_analog,
    property_node_id,
    tag_eu_range,
    typedef_of,
)
from bridge.opcua.model.tags import TagDirectory, split_items
from bridge.runtime.gc_policy import freeze_long_lived, paused
from bridge.wincc.models import Folder, TagInfo

__all__ = [
    "ENGINEERING_UNITS",
    "EU_RANGE",
    "ROOT_NAME",
    "AddressSpace",
    "access_level",
    "display_segment",
    "is_analog",
    "property_node_id",
    "tag_eu_range",
]

log = logging.getLogger(__name__)

ROOT_NAME = "WinCC"
_A = ua.AttributeIds
_VT = ua.VariantType
_OBJECTS_FOLDER = ua.NodeId(ua.ObjectIds.ObjectsFolder)
_SERVER = ua.NodeId(ua.ObjectIds.Server)
_BAD_NODE_UNKNOWN = ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)
_CHANGE_LIMIT = 1000  # per-node entries in one GeneralModelChangeEvent before it summarises
_YIELD_EVERY = 2000  # nodes built between two yields to the event loop
_LOG_EVERY_S = 1.0


class AddressSpace:
    """Builds and re-syncs the WinCC part of the server's address space. One instance per server."""

    def __init__(self, server: Server, directory: TagDirectory, *, minimum_sampling_interval_ms: float = 0.0) -> None:
        self._server = server
        self._aspace: UaAddressSpace = address_space(server)
        self._nodes = node_table(server)
        self.directory = directory
        directory.use_nodes(self._nodes)
        self.root_node_id = ua.NodeId(ROOT_NAME, directory.bridge_ns, ua.NodeIdType.String)
        self._factory = NodeFactory(self._aspace, directory, minimum_sampling_interval_ms)
        self._folders: dict[tuple[str, ...], NodeData] = {}  # () is the root
        self._listed_folders: set[tuple[str, ...]] = set()  # folders WinCC listed itself (kept while listed)
        self._inverse_refs: dict[tuple[str, ...], ua.ReferenceDescription] = {}
        self._change_event: Any = None
        self._lock = asyncio.Lock()  # build/update never interleave (first browse and re-browse may race)
        # folder -> child NodeId -> position of the folder's forward reference to it; built per folder on first use
        # within one update() and dropped when it ends, so a re-browse that changes n tags of a big folder costs
        # O(folder + n), not O(folder x n)
        self._forward_at: dict[tuple[str, ...], dict[ua.NodeId, int]] = {}
        self.last_changed: list[str] = []  # tags replaced in place by the last update()

    # ---- public API ---------------------------------------------------------------------------------------------
    async def build(self, items: Sequence[Folder | TagInfo]) -> None:
        """Create the root, then every folder and tag of `items` (folders a tag needs are created even if WinCC
        did not list them). Tags already present are left alone; use update() for a re-browse."""
        async with self._lock:
            await self._build(items)

    async def update(self, items: Sequence[Folder | TagInfo]) -> tuple[list[str], list[str]]:
        """Bring the address space in line with a new browse: add new tags, delete removed ones (and folders
        nothing needs any more), replace changed tags in place under the same NodeId. Emits one
        GeneralModelChangeEvent from the Server object when anything changed. Returns (added, removed) names;
        the names of tags replaced in place are in `last_changed`."""
        async with self._lock:
            return await self._update(items)

    async def _build(self, items: Sequence[Folder | TagInfo]) -> None:
        started = time.monotonic()
        self._ensure_root()
        folders, tags = split_items(items)
        for path in folders:
            self._listed_folders.add(path)
            self._ensure_folder(path)
        new = [t for t in tags.values() if t.name not in self.directory]
        count = await self._add_tags(new, started)
        elapsed = time.monotonic() - started
        log.info(
            "address space built: %d tags, %d folders in %.2f s (%.0f tags/s)",
            count,
            len(self._folders) - 1,
            elapsed,
            count / elapsed if elapsed > 0 else 0.0,
        )

    async def _update(self, items: Sequence[Folder | TagInfo]) -> tuple[list[str], list[str]]:
        started = time.monotonic()
        self._ensure_root()
        folders, tags = split_items(items)
        current = {name: self.directory.get(name) for name in self.directory.names()}
        removed = [name for name in current if name not in tags]
        added = [t for name, t in tags.items() if name not in current]
        changed = [t for name, t in tags.items() if name in current and current[name] != t]
        changes: list[tuple[ua.NodeId, ua.NodeId, int]] = []  # (affected, its type, verb)

        if removed:
            removed_infos = [info for n in removed if (info := current[n]) is not None]
            await self._delete_tags(removed_infos)
            self.directory.remove(removed)
            verb = ua.ModelChangeStructureVerbMask.NodeDeleted.value
            changes += [(self.directory.node_id(t.name), typedef_of(t), verb) for t in removed_infos]
        moved_from: dict[tuple[str, ...], set[ua.NodeId]] = {}  # folder -> tags that left it (removed in one pass)
        try:
            for tag in changed:
                old = current[tag.name]
                assert old is not None
                await self._replace_tag(old, tag, moved_from)
                verb = (
                    ua.ModelChangeStructureVerbMask.DataTypeChanged.value
                    if old.data_type != tag.data_type
                    else ua.ModelChangeStructureVerbMask.ReferenceAdded.value
                    | ua.ModelChangeStructureVerbMask.ReferenceDeleted.value
                )
                changes.append((self.directory.node_id(tag.name), typedef_of(tag), verb))
        finally:
            self._forward_at.clear()
            for path, gone_ids in moved_from.items():
                folder = self._folders.get(path)
                if folder is not None:
                    folder.references[:] = [r for r in folder.references if not (r.IsForward and r.NodeId in gone_ids)]
        self.directory.add(changed)
        self.last_changed = [t.name for t in changed]

        before = set(self._folders)
        self._listed_folders = set(folders)
        for path in folders:
            self._ensure_folder(path)
        if added:
            await self._add_tags(added, started)
            verb = ua.ModelChangeStructureVerbMask.NodeAdded.value
            changes += [(self.directory.node_id(t.name), typedef_of(t), verb) for t in added]
        gone = self._prune_folders({t.folder for t in tags.values()})
        verb = ua.ModelChangeStructureVerbMask.NodeAdded.value
        changes += [(self._folders[p].nodeid, FOLDER_TYPE, verb) for p in set(self._folders) - before]
        verb = ua.ModelChangeStructureVerbMask.NodeDeleted.value
        changes += [(node_id, FOLDER_TYPE, verb) for node_id in gone]

        if changes:
            await self._emit_model_change(changes)
            log.info(
                "address space updated in %.2f s: %d tags added, %d removed, %d changed, folders +%d -%d",
                time.monotonic() - started,
                len(added),
                len(removed),
                len(changed),
                len(set(self._folders) - before),
                len(gone),
            )
        return [t.name for t in added], removed

    # ---- folders ---------------------------------------------------------------------------------------------------
    def _ensure_root(self) -> None:
        if () in self._folders:
            return
        existing = self._aspace.get(self.root_node_id)
        if existing is not None:  # a second AddressSpace on the same server adopts the root
            self._folders[()] = existing
            return
        name = ua.QualifiedName(ROOT_NAME, self.directory.bridge_ns)
        node = self._factory.object_node(
            self.root_node_id,
            name,
            ua.LocalizedText(ROOT_NAME),
            ua.LocalizedText("WinCC tags served by the bridge"),
            ua.EventNotifier.SubscribeToEvents.mask,
        )
        objects = self._aspace[_OBJECTS_FOLDER]
        node.references.append(self._factory.reference(ORGANIZES, False, objects))
        node.references.append(self._factory.typedef_ref(FOLDER_TYPE))
        self._aspace[self.root_node_id] = node
        objects.references.append(self._factory.reference(ORGANIZES, True, node, FOLDER_TYPE))
        self._folders[()] = node

    def _ensure_folder(self, path: tuple[str, ...]) -> NodeData:
        node = self._folders.get(path)
        if node is not None:
            return node
        parent = self._ensure_folder(path[:-1])
        node_id = self.directory.folder_node_id(path)
        existing = self._aspace.get(node_id)
        if existing is not None:  # adopted, e.g. after a failed update
            self._folders[path] = existing
            return existing
        name = path[-1]
        node = self._factory.object_node(
            node_id, ua.QualifiedName(name, self.directory.tag_ns), ua.LocalizedText(name), ua.LocalizedText(), 0
        )
        node.references.append(self._inverse_ref(path[:-1], parent))
        node.references.append(self._factory.typedef_ref(FOLDER_TYPE))
        self._aspace[node_id] = node
        parent.references.append(self._factory.reference(ORGANIZES, True, node, FOLDER_TYPE))
        self._folders[path] = node
        return node

    def _inverse_ref(self, path: tuple[str, ...], folder: NodeData) -> ua.ReferenceDescription:
        """The child -> folder Organizes reference; one shared object per folder (it is never mutated)."""
        ref = self._inverse_refs.get(path)
        if ref is None or ref.NodeId != folder.nodeid:
            ref = self._inverse_refs[path] = self._factory.reference(ORGANIZES, False, folder, FOLDER_TYPE)
        return ref

    def _prune_folders(self, needed_by_tags: set[tuple[str, ...]]) -> list[ua.NodeId]:
        """Delete folders WinCC no longer lists and no tag needs, if nothing else hangs below them."""
        needed: set[tuple[str, ...]] = {()}
        for path in (*self._listed_folders, *needed_by_tags):
            needed.update(path[:i] for i in range(1, len(path) + 1))
        gone: list[ua.NodeId] = []
        for path in sorted((p for p in self._folders if p not in needed), key=len, reverse=True):
            node = self._folders[path]
            if any(r.IsForward and r.ReferenceTypeId in HIERARCHICAL for r in node.references):
                continue  # something (a tag of someone else, a condition...) still lives here
            parent = self._folders.get(path[:-1])
            if parent is not None:
                parent.references[:] = [r for r in parent.references if r.NodeId != node.nodeid]
            self._nodes.pop(node.nodeid, None)
            del self._folders[path]
            self._inverse_refs.pop(path, None)
            gone.append(node.nodeid)
        return gone

    # ---- tags ------------------------------------------------------------------------------------------------------
    async def _add_tags(self, tags: Sequence[TagInfo], started: float) -> int:
        """Build tags in chunks, yielding to the event loop between chunks so the server stays responsive."""
        last_log = time.monotonic()
        aspace_nodes = self._nodes
        # Building allocates millions of long-lived objects (none in reference cycles); the collections they
        # trigger walk everything built so far, which made a 100k build several times slower. The collector is
        # off while building and back on (as it was) afterwards, and a big build is then frozen out of its
        # passes (see bridge/runtime/gc_policy.py).
        with paused():
            try:
                return await self._add_chunks(tags, aspace_nodes, started, last_log)
            finally:
                freeze_long_lived("address space", len(tags))

    async def _add_chunks(
        self, tags: Sequence[TagInfo], aspace_nodes: dict[ua.NodeId, NodeData], started: float, last_log: float
    ) -> int:
        total = len(tags)
        done = 0
        for start in range(0, total, _YIELD_EVERY):
            chunk = tags[start : start + _YIELD_EVERY]
            by_parent: dict[tuple[str, ...], list[ua.ReferenceDescription]] = {}
            for tag in chunk:
                built = self._make_tag(tag)
                aspace_nodes[built.node.nodeid] = built.node
                for prop in built.properties:
                    aspace_nodes[prop.nodeid] = prop
                by_parent.setdefault(tag.folder, []).append(built.forward)
            for path, refs in by_parent.items():
                self._folders[path].references.extend(refs)
            self.directory.add(chunk)
            done += len(chunk)
            now = time.monotonic()
            if now - last_log >= _LOG_EVERY_S and done < total:
                last_log = now
                log.info("building address space: %d/%d tags (%.0f tags/s)", done, total, done / (now - started))
            await asyncio.sleep(0)
        return done

    def _make_tag(self, tag: TagInfo) -> Built:
        parent = self._folders.get(tag.folder) or self._ensure_folder(tag.folder)
        return self._factory.tag(tag, self._inverse_ref(tag.folder, parent))

    # ---- removal and in-place replacement ----------------------------------------------------------------------
    async def _delete_tags(self, tags: Sequence[TagInfo]) -> None:
        """Delete tag nodes and their properties; tell their monitored items BadNodeIdUnknown first."""
        by_parent: dict[tuple[str, ...], set[ua.NodeId]] = {}
        for i, tag in enumerate(tags):
            node_id = self.directory.node_id(tag.name)
            node = self._aspace.get(node_id)
            if node is None:
                continue
            for ref in node.references:
                if ref.IsForward and ref.ReferenceTypeId == HAS_PROPERTY:
                    await self._drop_node(ref.NodeId)
            await self._drop_node(node_id)
            parent = next(
                (r.NodeId for r in node.references if not r.IsForward and r.ReferenceTypeId == ORGANIZES), None
            )
            path = self._folder_path_of(tag.folder, parent)
            if path is not None:
                by_parent.setdefault(path, set()).add(node_id)
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        for path, gone in by_parent.items():
            refs = self._folders[path].references
            refs[:] = [r for r in refs if not (r.IsForward and r.NodeId in gone)]

    def _folder_path_of(self, folder: tuple[str, ...], parent_id: ua.NodeId | None) -> tuple[str, ...] | None:
        node = self._folders.get(folder)
        if node is not None and (parent_id is None or node.nodeid == parent_id):
            return folder
        return next((p for p, n in self._folders.items() if n.nodeid == parent_id), None)

    async def _drop_node(self, node_id: ua.NodeId) -> None:
        node = self._aspace.get(node_id)
        if node is None:
            return
        for attr in dict.values(node.attributes):  # the node's own: a shared attribute has no monitored item
            for handle, callback in list(attr.datachange_callbacks.items()):
                # the client's monitored item sees the node go away; then asyncua forgets the handle, so a later
                # DeleteMonitoredItems does not look the node up again
                await self._call(
                    callback, handle, ua.DataValue(StatusCode=_BAD_NODE_UNKNOWN, ServerTimestamp=datetime.now(UTC))
                )
                self._aspace.delete_datachange_callback(handle)
        del self._aspace[node_id]

    @staticmethod
    async def _call(callback: Any, *args: Any) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:  # one broken subscriber must not stop the model update
            log.exception("datachange callback failed")

    async def _replace_tag(self, old: TagInfo, new: TagInfo, moved_from: dict[tuple[str, ...], set[ua.NodeId]]) -> None:
        """Same NodeId, new attributes, references and properties; monitored items stay attached. A tag that
        changes folder is added to `moved_from` (its old folder's reference goes in one pass per folder)."""
        node_id = self.directory.node_id(new.name)
        node = self._aspace.get(node_id)
        if node is None:  # not there (e.g. removed by someone else): just create it
            await self._add_tags([new], time.monotonic())
            return
        fresh = self._make_tag(new)
        type_changed = old.data_type != new.data_type
        if isinstance(node.attributes, SharedAttributes) and isinstance(fresh.node.attributes, SharedAttributes):
            # the attributes the node shares now come from the new kind; its own ones are compared below
            node.attributes.template = fresh.node.attributes.template
        for attr_id, fresh_attr in fresh.node.attributes.items():
            if attr_id == _A.Value and not type_changed:
                continue  # the value is still valid for the same type
            attr = node.attributes.get(attr_id)
            if attr is None:
                node.attributes[attr_id] = own_copy(fresh_attr)
            elif attr.value != fresh_attr.value:  # names are made on read: equal, not the same object
                attr.value = fresh_attr.value
                attr.value_callback = None
                for handle, callback in list(attr.datachange_callbacks.items()):
                    await self._call(callback, handle, fresh_attr.value)
        # properties: keep the ones still needed (their monitored items too), drop the rest
        fresh_props = {p.nodeid: p for p in fresh.properties}
        for ref in node.references:
            if ref.IsForward and ref.ReferenceTypeId == HAS_PROPERTY and ref.NodeId not in fresh_props:
                await self._drop_node(ref.NodeId)
        for prop_id, prop in fresh_props.items():
            existing = self._aspace.get(prop_id)
            if existing is None:
                self._aspace[prop_id] = prop
                continue
            attr = existing.attributes[_A.Value]
            attr.value = prop.attributes[_A.Value].value
            for handle, callback in list(attr.datachange_callbacks.items()):
                await self._call(callback, handle, attr.value)
        node.references[:] = fresh.node.references
        # the folder's forward reference carries BrowseName/DisplayName/TypeDefinition: swap it, in place if the
        # tag stays in its folder (clients see the same order), else from the old folder to the new one
        old_parent = self._folder_path_of(old.folder, None)
        if old_parent == new.folder:
            at = self._forward_position(new.folder, node_id)
            if at is not None:
                self._folders[new.folder].references[at] = fresh.forward
                return
        elif old_parent is not None:
            moved_from.setdefault(old_parent, set()).add(node_id)
        refs = self._folders[new.folder].references
        index = self._forward_at.get(new.folder)
        if index is not None:
            index[node_id] = len(refs)
        refs.append(fresh.forward)

    def _forward_position(self, path: tuple[str, ...], node_id: ua.NodeId) -> int | None:
        """Where folder `path` holds its forward reference to `node_id`, in O(1). Every answer is checked against
        the list itself, and the index is rebuilt (once, O(folder)) when it is missing or the list changed under
        it (e.g. a reference someone else added or removed), so a stale index can cost time but never be wrong."""
        refs = self._folders[path].references
        index = self._forward_at.get(path)
        if index is not None:
            at = index.get(node_id)
            if at is not None and at < len(refs):
                ref = refs[at]
                if ref.IsForward and ref.NodeId == node_id:
                    return at
        index = self._forward_at[path] = {}
        for i, ref in enumerate(refs):
            if ref.IsForward:
                index.setdefault(ref.NodeId, i)
        return index.get(node_id)

    # ---- events ------------------------------------------------------------------------------------------------------
    async def _emit_model_change(self, changes: list[tuple[ua.NodeId, ua.NodeId, int]]) -> None:
        """One GeneralModelChangeEvent from the Server object. Past _CHANGE_LIMIT entries it names only the WinCC
        root ("references below changed") instead of every node: Part 3 lets a server report a common parent, and
        an event with 100,000 entries helps no client."""
        if len(changes) > _CHANGE_LIMIT:
            verb = (
                ua.ModelChangeStructureVerbMask.ReferenceAdded.value
                | ua.ModelChangeStructureVerbMask.ReferenceDeleted.value
            )
            changes = [(self.root_node_id, FOLDER_TYPE, verb)]
        structures = [ua.ModelChangeStructureDataType(Affected=a, AffectedType=t, Verb=v) for a, t, v in changes]
        try:
            if self._change_event is None:
                self._change_event = await self._server.get_event_generator(
                    ua.ObjectIds.GeneralModelChangeEventType, _SERVER
                )
            event = self._change_event.event
            event.Changes = structures
            event.data_types["Changes"] = _VT.ExtensionObject
            await self._change_event.trigger(message=f"WinCC model changed ({len(changes)} changes)")
        except Exception:  # the model is updated either way; a lost event must not undo that
            log.exception("could not emit GeneralModelChangeEvent")
