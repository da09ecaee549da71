"""The tag model as NodeSet2 XML (OPC UA Part 6 Annex F), and back.

`write_nodeset` writes the same nodes AddressSpace builds (root WinCC object, FolderType folders, tag variables
with DataType/AccessLevel/Historizing, AnalogItemType EURange/EngineeringUnits properties with their values), so
any NodeSet2 tool (UaModeler, asyncua's import_xml, node-opcua) can load the model. Namespace indexes in the file
are local: 1 = namespace_uri (tags), 2 = namespace_uri + "/folders", 3 = namespace_uri + "/bridge".

Every folder and tag node also carries, in its <Extensions>, the bridge's own record of the WinCC item
(`<wb:Folder>` / `<wb:Tag>` in namespace EXTENSION_NS, JSON text with every TagInfo field and the item's position
in the written list), so `read_nodeset` rebuilds exactly the list that was written: same items, same order, same
values (a second tag with an already used name is dropped, as the address space drops it). Folders that were not
listed by WinCC but are needed by a tag are written too (a NodeSet must be closed) with listed="false"; they are
not returned by read_nodeset. The file is written as a stream, so 100,000 tags need no DOM in memory.

A tag name containing characters XML 1.0 cannot carry (control characters) keeps them in the JSON record; only
the informational NodeId attribute shows U+FFFD instead.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from asyncua import ua

from bridge.opcua.model.address_space import (
    ENGINEERING_UNITS,
    EU_RANGE,
    ROOT_NAME,
    access_level,
    display_segment,
    is_analog,
    tag_eu_range,
)
from bridge.opcua.model.tags import folder_id_string
from bridge.opcua.model.types import VARIANT_TYPES
from bridge.opcua.model.units import eu_information
from bridge.wincc.models import DataType, Folder, TagInfo

__all__ = ["EXTENSION_NS", "NodeCounts", "read_nodeset", "write_nodeset"]

UA_NODESET_NS = "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"
UA_TYPES_NS = "http://opcfoundation.org/UA/2008/02/Types.xsd"
EXTENSION_NS = "urn:wincc-opcua-bridge:nodeset"
_FORMAT = 1  # version of the <wb:*> records

_ALIASES = {
    **{vt.name: f"i={vt.value}" for vt in VARIANT_TYPES.values()},
    "Range": f"i={ua.ObjectIds.Range}",
    "EUInformation": f"i={ua.ObjectIds.EUInformation}",
    "Organizes": f"i={ua.ObjectIds.Organizes}",
    "HasTypeDefinition": f"i={ua.ObjectIds.HasTypeDefinition}",
    "HasProperty": f"i={ua.ObjectIds.HasProperty}",
}
_FOLDER_TYPE = f"i={ua.ObjectIds.FolderType}"
_OBJECTS = f"i={ua.ObjectIds.ObjectsFolder}"
_PROPERTY_TYPE = f"i={ua.ObjectIds.PropertyType}"
_BASE_DATA_VARIABLE_TYPE = f"i={ua.ObjectIds.BaseDataVariableType}"
_ANALOG_ITEM_TYPE = f"i={ua.ObjectIds.AnalogItemType}"
_RANGE_XML = f"i={ua.ObjectIds.Range_Encoding_DefaultXml}"
_EU_XML = f"i={ua.ObjectIds.EUInformation_Encoding_DefaultXml}"

_TAG_NS, _FOLDER_NS, _BRIDGE_NS = 1, 2, 3
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# ---- writing ----------------------------------------------------------------------------------------------------
@dataclass
class NodeCounts:
    """The nodes a NodeSet file holds, by kind (every UAObject and UAVariable element is one)."""

    root: int = 1
    folders: int = 0
    tags: int = 0
    properties: int = 0

    @property
    def total(self) -> int:
        return self.root + self.folders + self.tags + self.properties

    def __str__(self) -> str:
        return (
            f"{self.total} nodes ({self.root} root, {self.folders} folders, {self.tags} tags, "
            f"{self.properties} properties)"
        )


def _text(value: str) -> str:
    value = _INVALID_XML.sub("\ufffd", value)
    # \r would come back as \n (XML end-of-line handling) unless written as a character reference
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def _json(data: Any) -> str:
    # ensure_ascii: the record survives any file encoding and never contains a character XML cannot carry
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "INF" if value > 0 else "-INF"
    return repr(float(value))


def _folder_id(path: tuple[str, ...]) -> str:
    return f"ns={_FOLDER_NS};s={folder_id_string(path)}" if path else f"ns={_BRIDGE_NS};s={ROOT_NAME}"


def _tag_record(tag: TagInfo) -> dict[str, Any]:
    return {
        "v": _FORMAT,
        "name": tag.name,
        "data_type": tag.data_type.value,
        "folder": list(tag.folder),
        "display_name": tag.display_name,
        "unit": tag.unit,
        "description": tag.description,
        "low": tag.low,
        "high": tag.high,
        "writable": tag.writable,
        "archived": tag.archived,
        "archive": tag.archive,
        "archive_tag": tag.archive_tag,
    }


def _folder_xml(path: tuple[str, ...], at: list[int]) -> str:
    """A folder; `at` are its positions in the written items ([] = not listed by WinCC, needed by a tag)."""
    name = path[-1]
    record = _text(_json({"v": _FORMAT, "path": list(path), "at": at}))
    return (
        f'  <UAObject NodeId="{_attr(_folder_id(path))}" BrowseName="{_TAG_NS}:{_attr(name)}" '
        f'ParentNodeId="{_attr(_folder_id(path[:-1]))}">\n'
        f"    <DisplayName>{_text(name)}</DisplayName>\n"
        "    <References>\n"
        f'      <Reference ReferenceType="HasTypeDefinition">{_FOLDER_TYPE}</Reference>\n'
        f'      <Reference ReferenceType="Organizes" IsForward="false">{_attr(_folder_id(path[:-1]))}</Reference>\n'
        "    </References>\n"
        f'    <Extensions><Extension><wb:Folder listed="{"true" if at else "false"}">{record}</wb:Folder>'
        "</Extension></Extensions>\n"
        "  </UAObject>\n"
    )


# Values are indented like the OPC Foundation's own NodeSets: asyncua's importer reads an element without text
# (no whitespace inside) as a null value.
def _range_xml(rng: ua.Range) -> str:
    return (
        "\n      <uax:ExtensionObject>\n"
        f"        <uax:TypeId>\n          <uax:Identifier>{_RANGE_XML}</uax:Identifier>\n        </uax:TypeId>\n"
        "        <uax:Body>\n          <uax:Range>\n"
        f"            <uax:Low>{_number(rng.Low)}</uax:Low>\n            <uax:High>{_number(rng.High)}</uax:High>\n"
        "          </uax:Range>\n        </uax:Body>\n      </uax:ExtensionObject>\n    "
    )


def _eu_xml(eu: ua.EUInformation) -> str:
    def localized(tag: str, lt: ua.LocalizedText) -> str:
        return (
            f"            <uax:{tag}>\n              <uax:Text>{_text(lt.Text or '')}</uax:Text>\n"
            f"            </uax:{tag}>\n"
        )

    namespace = (
        f"            <uax:NamespaceUri>{_text(eu.NamespaceUri)}</uax:NamespaceUri>\n" if eu.NamespaceUri else ""
    )
    return (
        "\n      <uax:ExtensionObject>\n"
        f"        <uax:TypeId>\n          <uax:Identifier>{_EU_XML}</uax:Identifier>\n        </uax:TypeId>\n"
        "        <uax:Body>\n          <uax:EUInformation>\n"
        f"{namespace}            <uax:UnitId>{eu.UnitId}</uax:UnitId>\n"
        f"{localized('DisplayName', eu.DisplayName)}{localized('Description', eu.Description)}"
        "          </uax:EUInformation>\n        </uax:Body>\n      </uax:ExtensionObject>\n    "
    )


def _property_xml(tag_id: str, tag_name: str, prop: str, data_type: str, value_xml: str) -> str:
    node_id = f"ns={_BRIDGE_NS};s={_attr(tag_name)}#{prop}"
    return (
        f'  <UAVariable NodeId="{node_id}" BrowseName="{prop}" ParentNodeId="{tag_id}" DataType="{data_type}" '
        'AccessLevel="1" UserAccessLevel="1">\n'
        f"    <DisplayName>{prop}</DisplayName>\n"
        "    <References>\n"
        f'      <Reference ReferenceType="HasTypeDefinition">{_PROPERTY_TYPE}</Reference>\n'
        f'      <Reference ReferenceType="HasProperty" IsForward="false">{tag_id}</Reference>\n'
        "    </References>\n"
        f"    <Value>{value_xml}</Value>\n"
        "  </UAVariable>\n"
    )


def _tag_xml(tag: TagInfo, index: int) -> str:
    tag_id = f"ns={_TAG_NS};s={_attr(tag.name)}"
    parent = _attr(_folder_id(tag.folder))
    segment = display_segment(tag)
    analog = is_analog(tag)
    unit = tag.unit.strip() if analog and tag.unit and tag.unit.strip() else None
    level = access_level(tag)
    historizing = ' Historizing="true"' if tag.archived else ""
    out = [
        f'  <UAVariable NodeId="{tag_id}" BrowseName="{_TAG_NS}:{_attr(segment)}" ParentNodeId="{parent}" '
        f'DataType="{VARIANT_TYPES[tag.data_type].name}" ValueRank="-1" AccessLevel="{level}" '
        f'UserAccessLevel="{level}"{historizing}>\n',
        f"    <DisplayName>{_text(segment)}</DisplayName>\n",
    ]
    if tag.description:
        out.append(f"    <Description>{_text(tag.description)}</Description>\n")
    out.append("    <References>\n")
    out.append(
        f'      <Reference ReferenceType="HasTypeDefinition">'
        f"{_ANALOG_ITEM_TYPE if analog else _BASE_DATA_VARIABLE_TYPE}</Reference>\n"
    )
    out.append(f'      <Reference ReferenceType="Organizes" IsForward="false">{parent}</Reference>\n')
    if analog:
        out.append(
            f'      <Reference ReferenceType="HasProperty">ns={_BRIDGE_NS};s={_attr(tag.name)}#{EU_RANGE}</Reference>\n'
        )
        if unit:
            out.append(
                f'      <Reference ReferenceType="HasProperty">ns={_BRIDGE_NS};s={_attr(tag.name)}'
                f"#{ENGINEERING_UNITS}</Reference>\n"
            )
    out.append("    </References>\n")
    out.append(
        f"    <Extensions><Extension><wb:Tag>{_text(_json({**_tag_record(tag), 'at': index}))}</wb:Tag>"
        "</Extension></Extensions>\n"
    )
    out.append("  </UAVariable>\n")
    if analog:
        out.append(_property_xml(tag_id, tag.name, EU_RANGE, "Range", _range_xml(tag_eu_range(tag))))
        if unit:
            out.append(
                _property_xml(tag_id, tag.name, ENGINEERING_UNITS, "EUInformation", _eu_xml(eu_information(unit)))
            )
    return "".join(out)


def _nodes(items: Sequence[Folder | TagInfo], counts: NodeCounts) -> Iterator[str]:
    """Node elements, each folder before its first use. Every record keeps the item's position(s) in `items`, so
    read_nodeset restores the exact order even where a folder had to be written before WinCC listed it."""
    positions: dict[tuple[str, ...], list[int]] = {}
    for index, item in enumerate(items):
        if isinstance(item, Folder) and item.path:
            positions.setdefault(tuple(item.path), []).append(index)
    written: set[tuple[str, ...]] = set()
    seen_tags: set[str] = set()

    def folders(path: tuple[str, ...]) -> Iterator[str]:
        for i in range(1, len(path) + 1):
            if path[:i] not in written:
                written.add(path[:i])
                counts.folders += 1
                yield _folder_xml(path[:i], positions.get(path[:i], []))

    for index, item in enumerate(items):
        if isinstance(item, Folder):
            yield from folders(tuple(item.path))
        elif isinstance(item, TagInfo):
            if not item.name or item.name in seen_tags:
                continue  # the address space skips these too
            seen_tags.add(item.name)
            yield from folders(item.folder)
            counts.tags += 1
            if is_analog(item):  # EURange, and EngineeringUnits when the tag has a unit (as _tag_xml writes them)
                counts.properties += 2 if item.unit and item.unit.strip() else 1
            yield _tag_xml(item, index)


def _write(out: IO[str], items: Sequence[Folder | TagInfo], namespace_uri: str) -> NodeCounts:
    out.write('<?xml version="1.0" encoding="utf-8"?>\n')
    out.write(
        f'<UANodeSet xmlns="{UA_NODESET_NS}" xmlns:uax="{UA_TYPES_NS}" xmlns:wb="{EXTENSION_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    )
    out.write("  <NamespaceUris>\n")
    for uri in (namespace_uri, namespace_uri + "/folders", namespace_uri + "/bridge"):
        out.write(f"    <Uri>{_text(uri)}</Uri>\n")
    out.write("  </NamespaceUris>\n")
    out.write("  <Aliases>\n")
    for alias, node_id in _ALIASES.items():
        out.write(f'    <Alias Alias="{alias}">{node_id}</Alias>\n')
    out.write("  </Aliases>\n")
    root = _folder_id(())
    out.write(
        f'  <UAObject NodeId="{root}" BrowseName="{_BRIDGE_NS}:{ROOT_NAME}" EventNotifier="1">\n'
        f"    <DisplayName>{ROOT_NAME}</DisplayName>\n"
        "    <Description>WinCC tags served by the bridge</Description>\n"
        "    <References>\n"
        f'      <Reference ReferenceType="HasTypeDefinition">{_FOLDER_TYPE}</Reference>\n'
        f'      <Reference ReferenceType="Organizes" IsForward="false">{_OBJECTS}</Reference>\n'
        "    </References>\n"
        "  </UAObject>\n"
    )
    counts = NodeCounts()
    for chunk in _nodes(items, counts):
        out.write(chunk)
    out.write("</UANodeSet>\n")
    return counts


def write_nodeset(items: Sequence[Folder | TagInfo], path: Path, namespace_uri: str) -> NodeCounts:
    """Write the model as NodeSet2 XML to `path` (parent directories are created); return what it holds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        return _write(out, items, namespace_uri)


# ---- reading ----------------------------------------------------------------------------------------------------
def _tag_from(record: dict[str, Any]) -> TagInfo:
    low, high = record.get("low"), record.get("high")
    for bound in (low, high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            raise ValueError(f"limit {bound!r} is not a number")
    name = record["name"]
    if not isinstance(name, str) or not name:
        raise ValueError("tag without a name")
    return TagInfo(
        name=name,
        data_type=DataType(record["data_type"]),
        folder=tuple(str(s) for s in record.get("folder") or ()),
        display_name=record.get("display_name") or "",
        unit=record.get("unit"),
        description=record.get("description"),
        low=low,
        high=high,
        writable=bool(record.get("writable", False)),
        archived=bool(record.get("archived", False)),
        archive=record.get("archive"),
        archive_tag=record.get("archive_tag"),
    )


def read_nodeset(path: Path) -> list[Folder | TagInfo]:
    """The items a write_nodeset file was written from, in the same order. Raises OSError if the file cannot be
    read and ValueError if it is not such a file (not XML, not a UANodeSet, a broken record)."""
    folder_tag = f"{{{EXTENSION_NS}}}Folder"
    tag_tag = f"{{{EXTENSION_NS}}}Tag"
    found: list[tuple[int, Folder | TagInfo]] = []
    saw_root = False
    try:
        for event, element in ET.iterparse(str(path), events=("start", "end")):
            if event == "start":
                if not saw_root:
                    if element.tag != f"{{{UA_NODESET_NS}}}UANodeSet":
                        raise ValueError(f"{path} is not a NodeSet2 file (root element {element.tag})")
                    saw_root = True
                continue
            if element.tag == folder_tag:
                record = json.loads(element.text or "")
                folder_path = record["path"]
                if not isinstance(folder_path, list) or not folder_path:
                    raise ValueError(f"broken folder record in {path}")
                folder = Folder(tuple(str(s) for s in folder_path))
                found += [(int(at), folder) for at in record.get("at") or ()]
            elif element.tag == tag_tag:
                record = json.loads(element.text or "")
                found.append((int(record.get("at", len(found))), _tag_from(record)))
            elif element.tag in (f"{{{UA_NODESET_NS}}}UAVariable", f"{{{UA_NODESET_NS}}}UAObject"):
                element.clear()  # keep memory flat for big files
    except ET.ParseError as exc:
        raise ValueError(f"{path} is not valid XML: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"broken record in {path}: {exc!r}") from None
    if not saw_root:
        raise ValueError(f"{path} is empty")
    found.sort(key=lambda pair: pair[0])  # stable: records without positions keep file order
    return [item for _, item in found]
