"""The directory of tags the address space serves: WinCC name <-> NodeId <-> TagInfo.

NodeId scheme (stable across restarts, re-browse and machines):
- tag:     ns=<opcua.namespace_uri>;s=<exact WinCC tag name>
- folder:  ns=<opcua.namespace_uri>/folders;s=<path segments joined by "/", each with "%" and "/" percent-escaped>
- bridge:  ns=<opcua.namespace_uri>/bridge;s=<name>   (BridgeStatus and other objects of the bridge itself)
Folders and the bridge's own nodes live in their own namespaces, so no WinCC tag name can ever collide with them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from asyncua import ua

from bridge.wincc.models import Folder, TagInfo

__all__ = ["TagDirectory", "folder_node_id", "folder_id_string", "split_items"]

log = logging.getLogger(__name__)

_BULK_NODE_IDS = 2_000  # node_ids(): from this many names on, one pass over the node table


def folder_id_string(path: tuple[str, ...]) -> str:
    return "/".join(seg.replace("%", "%25").replace("/", "%2F") for seg in path)


def folder_node_id(path: tuple[str, ...], ns: int) -> ua.NodeId:
    return ua.NodeId(folder_id_string(path), ns, ua.NodeIdType.String)


def split_items(items: Iterable[Folder | TagInfo]) -> tuple[list[tuple[str, ...]], dict[str, TagInfo]]:
    """A browse answer as (folder paths, tags by name): tags without a name are skipped, and of a name listed more
    than once the first is kept."""
    folders: dict[tuple[str, ...], None] = {}
    tags: dict[str, TagInfo] = {}
    nameless, duplicates = 0, []
    for item in items:
        if isinstance(item, TagInfo):
            if not item.name:
                nameless += 1
            elif item.name in tags:
                duplicates.append(item.name)
            else:
                tags[item.name] = item
        elif isinstance(item, Folder) and item.path:
            folders[tuple(item.path)] = None
    # one line each, however many: a broken export must not flood the log
    if nameless:
        log.warning("WinCC listed %d tag(s) without a name; skipped", nameless)
    if duplicates:
        log.warning(
            "WinCC listed %d tag name(s) more than once, keeping the first of each: %s%s",
            len(duplicates),
            ", ".join(repr(n) for n in duplicates[:5]),
            " ..." if len(duplicates) > 5 else "",
        )
    return list(folders), tags


class TagDirectory:
    """Every tag currently in the address space, indexed both ways. Owned by the address space builder;
    read by sync, writes and history."""

    def __init__(self, tag_ns: int, folder_ns: int, bridge_ns: int) -> None:
        self.tag_ns = tag_ns
        self.folder_ns = folder_ns
        self.bridge_ns = bridge_ns
        self._tags: dict[str, TagInfo] = {}
        self._nodes: Mapping[ua.NodeId, Any] | None = None

    def use_nodes(self, nodes: Mapping[ua.NodeId, Any]) -> None:
        """The address space's node table: node_id() then hands out the NodeId a tag's node already holds, so
        whoever keeps one per tag (the sync engine) keeps no copy of it."""
        self._nodes = nodes

    def node_id(self, name: str) -> ua.NodeId:
        node_id = ua.NodeId(name, self.tag_ns, ua.NodeIdType.String)
        node = self._nodes.get(node_id) if self._nodes is not None else None
        return node_id if node is None else node.nodeid

    def node_ids(self, names: Iterable[str]) -> dict[str, ua.NodeId]:
        """node_id() of many tags at once. Past a few thousand names one pass over the node table is cheaper than
        making and hashing a NodeId per name (100,000 tags at start: ~0.04 s against ~0.3 s, all of it holding
        the event loop)."""
        names = list(names)
        if self._nodes is None or len(names) < _BULK_NODE_IDS:
            return {name: self.node_id(name) for name in names}
        ns = self.tag_ns
        held = {
            nid.Identifier: node.nodeid
            for nid, node in self._nodes.items()
            if nid.NamespaceIndex == ns and type(nid.Identifier) is str
        }
        return {name: held.get(name) or ua.NodeId(name, ns, ua.NodeIdType.String) for name in names}

    def folder_node_id(self, path: tuple[str, ...]) -> ua.NodeId:
        return folder_node_id(path, self.folder_ns)

    def tag_for(self, node_id: ua.NodeId) -> TagInfo | None:
        if node_id.NamespaceIndex != self.tag_ns or not isinstance(node_id.Identifier, str):
            return None
        return self._tags.get(node_id.Identifier)

    def get(self, name: str) -> TagInfo | None:
        return self._tags.get(name)

    def add(self, tags: Iterable[TagInfo]) -> None:
        for t in tags:
            self._tags[t.name] = t

    def remove(self, names: Iterable[str]) -> None:
        for n in names:
            self._tags.pop(n, None)

    def names(self) -> list[str]:
        return list(self._tags)

    def __contains__(self, name: object) -> bool:
        return name in self._tags

    def __iter__(self) -> Iterator[TagInfo]:
        return iter(list(self._tags.values()))

    def __len__(self) -> int:
        return len(self._tags)

    def only(self, prefix: str) -> TagDirectory:
        """A live view of the tags whose names start with `prefix` (one source's, see bridge/sources.py); the
        whole directory for "". Adding and removing still go through the directory itself."""
        return self if not prefix else _PrefixView(self, prefix)


class _PrefixView(TagDirectory):
    def __init__(self, whole: TagDirectory, prefix: str) -> None:
        super().__init__(whole.tag_ns, whole.folder_ns, whole.bridge_ns)
        self._tags = whole._tags  # shared, not copied: the view follows every change of the directory
        self._prefix = prefix
        self._whole = whole

    def node_id(self, name: str) -> ua.NodeId:
        return self._whole.node_id(name)

    def node_ids(self, names: Iterable[str]) -> dict[str, ua.NodeId]:
        return self._whole.node_ids(names)

    def tag_for(self, node_id: ua.NodeId) -> TagInfo | None:
        tag = super().tag_for(node_id)
        return tag if tag is not None and tag.name.startswith(self._prefix) else None

    def get(self, name: str) -> TagInfo | None:
        return self._tags.get(name) if name.startswith(self._prefix) else None

    def names(self) -> list[str]:
        return [n for n in self._tags if n.startswith(self._prefix)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.startswith(self._prefix) and name in self._tags

    def __iter__(self) -> Iterator[TagInfo]:
        return iter([t for n, t in self._tags.items() if n.startswith(self._prefix)])

    def __len__(self) -> int:
        return sum(1 for n in self._tags if n.startswith(self._prefix))
