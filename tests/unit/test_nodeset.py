"""NodeSet2 export/import of the tag model: exact round trip, valid NodeSet2 that asyncua itself imports, and the
imported nodes agree with what AddressSpace builds."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from asyncua import Server, ua
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.nodeset import EXTENSION_NS, read_nodeset, write_nodeset
from bridge.opcua.model.tags import TagDirectory
from bridge.wincc.models import DataType, Folder, TagInfo

NS = {"n": "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"}
URI = "urn:wincc-opcua-bridge:tags"

ITEMS: list[Folder | TagInfo] = [
    Folder(("Plant", "Tank1")),  # listed before its parent
    Folder(("Plant",)),
    TagInfo(
        "Plant.Tank1.Level",
        DataType.float,
        ("Plant", "Tank1"),
        unit="m³/h",
        low=0,
        high=10.5,
        description='Füllstand <Tank 1> & "mehr"',
        writable=True,
        archived=True,
    ),
    TagInfo("Plant.Tank1.Count", DataType.int16, ("Plant", "Tank1"), high=100),
    TagInfo("Plant.Tank1.Alarm", DataType.bool, ("Plant", "Tank1")),
    TagInfo("Other.Tag;with=odd\tchars\r\nand\x01control", DataType.string, ("Other",), unit="Stk"),
    TagInfo(
        "Tank1_Level", DataType.double, ("PLC1", "Tank1"), unit="foo", archive="Arch1", archive_tag="T1L", archived=True
    ),
    TagInfo("Loose", DataType.datetime, display_name="Shown name"),
    Folder(("Empty",)),
    Folder(("Plant",)),  # WinCC listed it twice
]


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "model.xml"
    write_nodeset(ITEMS, path, URI)
    assert read_nodeset(path) == ITEMS


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "nodesets" / "deeper" / "model.xml"
    write_nodeset(ITEMS[:3], path, URI)
    assert read_nodeset(path) == ITEMS[:3]


def test_second_tag_with_a_used_name_is_dropped_like_the_address_space_does(tmp_path: Path) -> None:
    first = TagInfo("T", DataType.int32)
    write_nodeset([first, TagInfo("T", DataType.string)], tmp_path / "m.xml", URI)
    assert read_nodeset(tmp_path / "m.xml") == [first]


def test_empty_model(tmp_path: Path) -> None:
    write_nodeset([], tmp_path / "m.xml", URI)
    assert read_nodeset(tmp_path / "m.xml") == []


def test_file_is_nodeset2_with_every_node_and_reference(tmp_path: Path) -> None:
    path = tmp_path / "model.xml"
    write_nodeset(ITEMS, path, URI)
    root = ET.parse(path).getroot()
    assert root.tag == f"{{{NS['n']}}}UANodeSet"
    assert [u.text for u in root.findall("n:NamespaceUris/n:Uri", NS)] == [URI, URI + "/folders", URI + "/bridge"]
    aliases = {a.get("Alias"): a.text for a in root.findall("n:Aliases/n:Alias", NS)}
    assert aliases["Float"] == "i=10" and aliases["HasProperty"] == "i=46"
    nodes = {n.get("NodeId"): n for n in root if n.tag.endswith(("UAObject", "UAVariable"))}
    # every reference target and ParentNodeId is in the file or in namespace 0
    for n in nodes.values():
        targets = [r.text for r in n.findall("n:References/n:Reference", NS)]
        if n.get("ParentNodeId"):
            targets.append(n.get("ParentNodeId"))
        for target in targets:
            assert target in nodes or target.startswith("i="), (n.get("NodeId"), target)
    level = nodes["ns=1;s=Plant.Tank1.Level"]
    assert (
        level.get("DataType"),
        level.get("AccessLevel"),
        level.get("UserAccessLevel"),
        level.get("Historizing"),
        level.get("BrowseName"),
        level.get("ParentNodeId"),
    ) == ("Float", "7", "7", "true", "1:Level", "ns=2;s=Plant/Tank1")
    assert level.find("n:DisplayName", NS).text == "Level"
    eu = nodes["ns=3;s=Plant.Tank1.Level#EngineeringUnits"]
    assert eu.get("BrowseName") == "EngineeringUnits" and eu.get("DataType") == "EUInformation"
    assert "ns=2;s=Empty" in nodes and "ns=2;s=PLC1/Tank1" in nodes  # listed-but-empty and implied folders
    implied = nodes["ns=2;s=PLC1"].find(f"n:Extensions/n:Extension/{{{EXTENSION_NS}}}Folder", NS)
    assert implied.get("listed") == "false"


def xml_safe(value: object) -> object:
    """What survives XML 1.0 (only the JSON record keeps control characters)."""
    if isinstance(value, ua.QualifiedName):
        return ua.QualifiedName(value.Name.replace("\x01", "\ufffd"), value.NamespaceIndex)
    if isinstance(value, ua.LocalizedText) and value.Text:
        return ua.LocalizedText(value.Text.replace("\x01", "\ufffd"), value.Locale)
    return value


async def test_asyncua_imports_the_file_and_agrees_with_the_address_space(tmp_path: Path) -> None:
    path = tmp_path / "model.xml"
    write_nodeset(ITEMS, path, URI)
    imported = Server()
    await imported.init()
    await imported.import_xml(str(path))
    built = Server()
    await built.init()
    ns = [await built.register_namespace(URI + s) for s in ("", "/folders", "/bridge")]
    space = AddressSpace(built, TagDirectory(*ns))
    await space.build(ITEMS)
    assert (await imported.get_namespace_array())[-3:] == (await built.get_namespace_array())[-3:]
    # Historizing is checked in the XML test: asyncua's importer parses it but never applies it
    attrs = [
        ua.AttributeIds.BrowseName,
        ua.AttributeIds.DisplayName,
        ua.AttributeIds.DataType,
        ua.AttributeIds.AccessLevel,
        ua.AttributeIds.UserAccessLevel,
        ua.AttributeIds.ValueRank,
        ua.AttributeIds.Description,
    ]
    tags = [i for i in ITEMS if isinstance(i, TagInfo)]
    for t in tags:
        ours = built.get_node(space.directory.node_id(t.name))
        # XML cannot carry \x01: the file's NodeId shows U+FFFD there (the record keeps the exact name)
        theirs = imported.get_node(ua.NodeId(t.name.replace("\x01", "\ufffd"), ours.nodeid.NamespaceIndex))
        for attr in attrs:
            mine = (await ours.read_attribute(attr)).Value.Value
            other = (await theirs.read_attribute(attr)).Value.Value
            assert xml_safe(mine) == other, (t.name, attr, mine, other)
        assert await ours.read_type_definition() == await theirs.read_type_definition()
        mine_props = {(await p.read_browse_name()).Name: await p.read_value() for p in await ours.get_properties()}
        their_props = {(await p.read_browse_name()).Name: await p.read_value() for p in await theirs.get_properties()}
        assert mine_props == their_props, t.name
        assert (await theirs.get_parent()).nodeid == (await ours.get_parent()).nodeid, t.name
    folder = imported.get_node(ua.NodeId("Plant/Tank1", ns[1]))
    assert await folder.read_type_definition() == ua.NodeId(ua.ObjectIds.FolderType)
    root = imported.get_node(ua.NodeId("WinCC", ns[2]))
    assert (await root.get_parent()).nodeid == imported.nodes.objects.nodeid


def test_not_a_nodeset_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "x.xml"
    path.write_text("not xml at all")
    with pytest.raises(ValueError):
        read_nodeset(path)
    path.write_text("<other/>")
    with pytest.raises(ValueError):
        read_nodeset(path)
    path.write_text("")
    with pytest.raises(ValueError):
        read_nodeset(path)
    with pytest.raises(OSError):
        read_nodeset(tmp_path / "missing.xml")


@pytest.mark.parametrize(
    "record",
    [
        "{broken json",
        '{"v":1,"data_type":"float"}',  # no name
        '{"v":1,"name":"x","data_type":"quaternion"}',
        '{"v":1,"name":"x","data_type":"float","low":"ten"}',
    ],
)
def test_broken_records_are_value_errors(tmp_path: Path, record: str) -> None:
    path = tmp_path / "m.xml"
    write_nodeset([TagInfo("x", DataType.float)], path, URI)
    text = path.read_text()
    start = text.index("<wb:Tag>") + len("<wb:Tag>")
    end = text.index("</wb:Tag>")
    path.write_text(text[:start] + record.replace("&", "&amp;").replace("<", "&lt;") + text[end:])
    with pytest.raises(ValueError):
        read_nodeset(path)


names = st.text(min_size=1, max_size=30)
segments = st.lists(st.text(min_size=1, max_size=8), max_size=3).map(tuple)
limits = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=True, width=64))
tags = st.builds(
    TagInfo,
    name=names,
    data_type=st.sampled_from(list(DataType)),
    folder=segments,
    display_name=st.text(max_size=10),
    unit=st.one_of(st.none(), st.text(max_size=6)),
    description=st.one_of(st.none(), st.text(max_size=20)),
    low=limits,
    high=limits,
    writable=st.booleans(),
    archived=st.booleans(),
    archive=st.one_of(st.none(), st.text(max_size=5)),
    archive_tag=st.one_of(st.none(), st.text(max_size=5)),
)
models = st.lists(st.one_of(tags, segments.filter(bool).map(Folder)), max_size=12).map(
    lambda items: [
        i
        for n, i in enumerate(items)
        if not isinstance(i, TagInfo) or i.name not in {j.name for j in items[:n] if isinstance(j, TagInfo)}
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(models)
def test_round_trip_of_any_model(tmp_path: Path, items: list[Folder | TagInfo]) -> None:
    path = tmp_path / "any.xml"
    write_nodeset(items, path, URI)
    back = read_nodeset(path)
    assert back == items
    for a, b in zip(items, back, strict=True):  # == treats 0 and 0.0 alike; the types survive too
        if isinstance(a, TagInfo):
            assert type(a.low) is type(b.low) and type(a.high) is type(b.high)
            assert a.low is None or math.isinf(a.low) or a.low == b.low


async def test_a_snapshot_builds_the_same_address_space_as_the_browse(tmp_path: Path) -> None:
    """WinCC unreachable at start: the server builds from the last snapshot, values wait for the first poll."""
    path = tmp_path / "last-browse.xml"
    write_nodeset(ITEMS, path, URI)
    server = Server()
    await server.init()

    async def build(uri: str, items: list[Folder | TagInfo]) -> dict[tuple[int, str], tuple[object, ...]]:
        ns = [await server.register_namespace(uri + s) for s in ("", "/folders", "/bridge")]
        space = AddressSpace(server, TagDirectory(*ns))
        await space.build(items)
        aspace = server.iserver.aspace
        shape = {}
        for node_id in list(aspace.keys()):
            if node_id.NamespaceIndex in ns:
                attrs = aspace[node_id].attributes
                shape[(ns.index(node_id.NamespaceIndex), node_id.Identifier)] = (
                    attrs[ua.AttributeIds.NodeClass].value.Value.Value,
                    attrs[ua.AttributeIds.DisplayName].value.Value.Value,
                    sorted(
                        (r.ReferenceTypeId.Identifier, r.IsForward, str(r.NodeId.Identifier))
                        for r in aspace[node_id].references
                    ),
                )
        return shape

    from_browse = await build("urn:a", ITEMS)
    from_snapshot = await build("urn:b", read_nodeset(path))
    assert from_snapshot == from_browse and len(from_browse) > len(ITEMS)
    level = ua.NodeId("Plant.Tank1.Level", (await server.get_namespace_array()).index("urn:b"))
    dv = await server.get_node(level).read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData


def test_write_nodeset_counts_every_node_in_the_file(tmp_path: Path) -> None:
    """`export-nodeset` prints these counts: they must be the file's UAObject and UAVariable elements."""
    from bridge.opcua.model.nodeset import write_nodeset
    from bridge.wincc.models import DataType, Folder, TagInfo

    items = [
        Folder(("A",)),
        Folder(("A", "B")),
        TagInfo("A.B.Level", DataType.float, ("A", "B"), "Level", unit="m", low=0, high=10),  # + EURange, EU
        TagInfo("A.B.Count", DataType.int16, ("A", "B"), "Count", low=0, high=5),  # + EURange
        TagInfo("A.Flag", DataType.bool, ("A",), "Flag"),
        TagInfo("C.D.Text", DataType.string, ("C", "D"), "Text"),  # folders C and C/D are not listed: implied
    ]
    path = tmp_path / "x.xml"
    counts = write_nodeset(items, path, "urn:t")
    root = ET.parse(path).getroot()
    elements = [e for e in root if e.tag.endswith(("}UAObject", "}UAVariable"))]
    assert counts.total == len(elements) == 12
    assert (counts.root, counts.folders, counts.tags, counts.properties) == (1, 4, 4, 3)
    assert str(counts) == "12 nodes (1 root, 4 folders, 4 tags, 3 properties)"
