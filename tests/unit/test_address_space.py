"""AddressSpace: the bulk-built WinCC model inside a real (not started) asyncua server, checked through asyncua's
own services (Read, Browse, TranslateBrowsePaths, subscriptions), never through our own data structures."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Node, Server, ua

from bridge.opcua.model.address_space import AddressSpace, display_segment, property_node_id
from bridge.opcua.model.tags import TagDirectory
from bridge.wincc.models import DataType, Folder, TagInfo
from tests.helpers import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

A = ua.AttributeIds
VT = ua.VariantType
ORGANIZES = ua.NodeId(ua.ObjectIds.Organizes)
HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
_ids = itertools.count()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> Server:
    srv = Server()
    await srv.init()  # never started: the services work in-process, no client needed
    return srv


@pytest_asyncio.fixture(loop_scope="module")
async def space(server: Server) -> AddressSpace:
    """A fresh AddressSpace in its own three namespaces (so tests do not see each other's nodes)."""
    uri = f"urn:test:{next(_ids)}"
    ns = [await server.register_namespace(uri + suffix) for suffix in ("", "/folders", "/bridge")]
    return AddressSpace(server, TagDirectory(*ns))


def tag(name: str, data_type: DataType = DataType.double, folder: tuple[str, ...] = (), **kw: Any) -> TagInfo:
    return TagInfo(name=name, data_type=data_type, folder=folder, **kw)


PLANT = [
    Folder(("Plant",)),
    Folder(("Plant", "Tank1")),
    tag(
        "Plant.Tank1.Level",
        DataType.float,
        ("Plant", "Tank1"),
        unit="m",
        low=0,
        high=10,
        description="Tank 1 level",
        writable=True,
        archived=True,
    ),
    tag("Plant.Tank1.Running", DataType.bool, ("Plant", "Tank1")),
    tag("Plant.Tank1.Count", DataType.int16, ("Plant", "Tank1"), high=100, writable=True),
    tag("Plant.Tank1.Name", DataType.string, ("Plant", "Tank1"), unit="m"),  # not numeric: no AnalogItemType
    tag("Loose", DataType.uint32),  # at the root
]


def node(server: Server, space: AddressSpace, name: str) -> Node:
    return server.get_node(space.directory.node_id(name))


async def read(server: Server, node_id: ua.NodeId, attr: ua.AttributeIds) -> ua.DataValue:
    params = ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=node_id, AttributeId=attr)])
    return (await server.iserver.isession.read(params))[0]


async def refs(
    server: Server,
    node_id: ua.NodeId,
    direction: ua.BrowseDirection = ua.BrowseDirection.Forward,
    ref_type: int = ua.ObjectIds.HierarchicalReferences,
) -> list[ua.ReferenceDescription]:
    desc = ua.BrowseDescription(
        NodeId=node_id,
        BrowseDirection=direction,
        ReferenceTypeId=ua.NodeId(ref_type),
        IncludeSubtypes=True,
        ResultMask=0x3F,
    )
    result = (await server.iserver.isession.browse(ua.BrowseParameters(NodesToBrowse=[desc])))[0]
    result.StatusCode.check()
    return result.References


# ---- structure ------------------------------------------------------------------------------------------------
async def test_root_folder_is_organized_from_objects_and_notifies_events(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    assert space.root_node_id == ua.NodeId("WinCC", d.bridge_ns)
    root = server.get_node(space.root_node_id)
    assert await root.read_type_definition() == ua.NodeId(ua.ObjectIds.FolderType)
    assert await root.read_event_notifier() == {ua.EventNotifier.SubscribeToEvents}
    parents = await refs(server, space.root_node_id, ua.BrowseDirection.Inverse)
    assert [(r.NodeId, r.ReferenceTypeId) for r in parents] == [(server.nodes.objects.nodeid, ORGANIZES)]
    from_objects = await refs(server, server.nodes.objects.nodeid)
    assert space.root_node_id in [r.NodeId for r in from_objects]


async def test_folders_and_tags_follow_the_wincc_hierarchy(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    top = await refs(server, space.root_node_id)
    assert {r.NodeId for r in top} == {d.folder_node_id(("Plant",)), d.node_id("Loose")}
    tank = d.folder_node_id(("Plant", "Tank1"))
    assert tank == ua.NodeId("Plant/Tank1", d.folder_ns)
    children = await refs(server, tank)
    assert [r.NodeId.Identifier for r in children] == [
        "Plant.Tank1.Level",
        "Plant.Tank1.Running",
        "Plant.Tank1.Count",
        "Plant.Tank1.Name",
    ]
    assert {r.ReferenceTypeId for r in children} == {ORGANIZES}
    assert [r.DisplayName.Text for r in children] == ["Level", "Running", "Count", "Name"]
    assert [r.BrowseName for r in children] == [
        ua.QualifiedName(n, d.tag_ns) for n in ("Level", "Running", "Count", "Name")
    ]
    # each child points back at its folder (asyncua's view service sees both directions)
    level = d.node_id("Plant.Tank1.Level")
    up = await refs(server, level, ua.BrowseDirection.Inverse)
    assert [(r.NodeId, r.ReferenceTypeId, r.NodeClass) for r in up] == [(tank, ORGANIZES, ua.NodeClass.Object)]
    assert len(d) == 5 and d.get("Loose") is not None


async def test_translate_browse_path_finds_a_tag(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    ns = space.directory.tag_ns
    found = await server.get_node(space.root_node_id).get_child([f"{ns}:Plant", f"{ns}:Tank1", f"{ns}:Level"])
    assert found.nodeid == space.directory.node_id("Plant.Tank1.Level")


async def test_missing_folders_are_created_for_tags(server: Server, space: AddressSpace) -> None:
    await space.build([tag("X.Y.Z", folder=("X", "Y"))])  # WinCC listed no folder
    d = space.directory
    assert [r.NodeId for r in await refs(server, space.root_node_id)] == [d.folder_node_id(("X",))]
    assert [r.NodeId for r in await refs(server, d.folder_node_id(("X",)))] == [d.folder_node_id(("X", "Y"))]
    assert await node(server, space, "X.Y.Z").read_display_name() == ua.LocalizedText("Z")


async def test_folder_ids_cannot_collide_with_tags_or_each_other(server: Server, space: AddressSpace) -> None:
    items = [Folder(("a/b",)), Folder(("a", "b")), tag("a/b", folder=("a/b",)), tag("a", folder=("a", "b"))]
    await space.build(items)
    d = space.directory
    ids = [d.folder_node_id(("a/b",)), d.folder_node_id(("a", "b")), d.node_id("a/b"), d.node_id("a")]
    assert len(set(ids)) == 4
    for node_id in ids:
        assert (await read(server, node_id, A.NodeId)).Value.Value == node_id


async def test_duplicate_and_nameless_tags_are_skipped(server: Server, space: AddressSpace) -> None:
    await space.build([tag("T", DataType.int32), tag("T", DataType.string), tag("")])
    assert len(space.directory) == 1
    assert (await read(server, space.directory.node_id("T"), A.DataType)).Value.Value == ua.NodeId(VT.Int32.value)


async def test_display_name_is_the_last_segment() -> None:
    assert display_segment(tag("Plant.Tank1.Level", folder=("Plant", "Tank1"))) == "Level"
    assert display_segment(tag("Tank1_Level", folder=("PLC1", "Tank1"))) == "Tank1_Level"  # restservice
    assert display_segment(tag("A.B", folder=(), display_name="Shown")) == "Shown"
    assert display_segment(tag("Plant.Tank1.", folder=("Plant", "Tank1"))) == "Plant.Tank1."


# ---- attributes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data_type,variant",
    [
        (DataType.bool, VT.Boolean),
        (DataType.int8, VT.SByte),
        (DataType.int16, VT.Int16),
        (DataType.int32, VT.Int32),
        (DataType.int64, VT.Int64),
        (DataType.uint8, VT.Byte),
        (DataType.uint16, VT.UInt16),
        (DataType.uint32, VT.UInt32),
        (DataType.uint64, VT.UInt64),
        (DataType.float, VT.Float),
        (DataType.double, VT.Double),
        (DataType.string, VT.String),
        (DataType.datetime, VT.DateTime),
    ],
)
async def test_exact_data_types(server: Server, space: AddressSpace, data_type: DataType, variant: VT) -> None:
    await space.build([tag("T", data_type)])
    dv = await read(server, space.directory.node_id("T"), A.DataType)
    assert dv.Value.Value == ua.NodeId(variant.value, 0)
    assert (await read(server, space.directory.node_id("T"), A.ValueRank)).Value.Value == -1


async def test_initial_value_waits_for_data_and_only_accepts_the_right_type(
    server: Server, space: AddressSpace
) -> None:
    await space.build(PLANT)
    level = space.directory.node_id("Plant.Tank1.Level")
    dv = await read(server, level, A.Value)
    assert dv.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
    assert dv.Value.Value is None
    aspace = server.iserver.aspace
    bad = await aspace.write_attribute_value(level, A.Value, ua.DataValue(ua.Variant(1.5, VT.Double)))
    assert bad.value == ua.StatusCodes.BadTypeMismatch  # asyncua checks writes against our DataType attribute
    good = await aspace.write_attribute_value(level, A.Value, ua.DataValue(ua.Variant(1.5, VT.Float)))
    assert good.is_good()
    assert (await read(server, level, A.Value)).Value.Value == 1.5
    # other tags are unaffected by the shared initial DataValue
    assert (await read(server, space.directory.node_id("Loose"), A.Value)).Value.Value is None


async def test_access_level_historizing_and_description(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    level, running = d.node_id("Plant.Tank1.Level"), d.node_id("Plant.Tank1.Running")
    rw_history = ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.CurrentWrite.mask | ua.AccessLevel.HistoryRead.mask
    assert (await read(server, level, A.AccessLevel)).Value == ua.Variant(rw_history, VT.Byte)
    assert (await read(server, level, A.UserAccessLevel)).Value == ua.Variant(rw_history, VT.Byte)
    assert (await read(server, level, A.Historizing)).Value.Value is True
    assert (await read(server, level, A.Description)).Value.Value == ua.LocalizedText("Tank 1 level")
    assert (await read(server, running, A.AccessLevel)).Value.Value == ua.AccessLevel.CurrentRead.mask
    assert (await read(server, running, A.Historizing)).Value.Value is False
    assert (await read(server, running, A.Description)).Value.Value == ua.LocalizedText()


async def test_minimum_sampling_interval_is_configurable(server: Server) -> None:
    ns = [await server.register_namespace(f"urn:msi{s}") for s in ("", "/f", "/b")]
    space = AddressSpace(server, TagDirectory(*ns), minimum_sampling_interval_ms=250)
    await space.build([tag("T")])
    assert (await read(server, space.directory.node_id("T"), A.MinimumSamplingInterval)).Value.Value == 250.0


async def test_analog_items_have_engineering_units_and_range(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    level = node(server, space, "Plant.Tank1.Level")
    assert await level.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
    props = {(await p.read_browse_name()).to_string(): p for p in await level.get_properties()}
    assert set(props) == {"0:EURange", "0:EngineeringUnits"}  # namespace 0: the names AnalogItemType defines
    eu_range = props["0:EURange"]
    units = props["0:EngineeringUnits"]
    assert eu_range.nodeid == property_node_id("Plant.Tank1.Level", "EURange", d.bridge_ns)
    assert units.nodeid == ua.NodeId("Plant.Tank1.Level#EngineeringUnits", d.bridge_ns)
    assert await eu_range.read_value() == ua.Range(Low=0.0, High=10.0)
    eu = await units.read_value()
    assert (eu.UnitId, eu.DisplayName.Text) == (5067858, "m")  # UNECE MTR
    for prop in (eu_range, units):
        assert await prop.read_type_definition() == ua.NodeId(ua.ObjectIds.PropertyType)
        up = await refs(server, prop.nodeid, ua.BrowseDirection.Inverse, ua.ObjectIds.HasProperty)
        assert [r.NodeId for r in up] == [level.nodeid]
    assert (await read(server, eu_range.nodeid, A.DataType)).Value.Value == ua.NodeId(ua.ObjectIds.Range)
    assert (await read(server, units.nodeid, A.DataType)).Value.Value == ua.NodeId(ua.ObjectIds.EUInformation)


async def test_missing_limit_is_the_type_limit_and_units_are_optional(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    count = node(server, space, "Plant.Tank1.Count")
    assert await count.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
    props = {(await p.read_browse_name()).Name: p for p in await count.get_properties()}
    assert set(props) == {"EURange"}
    assert await props["EURange"].read_value() == ua.Range(Low=-32768.0, High=100.0)


@pytest.mark.parametrize("name", ["Plant.Tank1.Running", "Plant.Tank1.Name", "Loose"])
async def test_plain_tags_are_base_data_variables(server: Server, space: AddressSpace, name: str) -> None:
    await space.build(PLANT)
    n = node(server, space, name)
    assert await n.read_type_definition() == ua.NodeId(ua.ObjectIds.BaseDataVariableType)
    assert await n.get_properties() == []


async def test_attributes_match_what_asyncua_add_variable_creates(server: Server, space: AddressSpace) -> None:
    """Same attribute set, same VariantTypes, same values except where the bridge means something else."""
    sample = tag("Cmp.Level", DataType.float, ("Cmp",))
    await space.build([sample])
    ours = space.directory.node_id(sample.name)
    theirs_node = await server.nodes.objects.add_variable(
        ua.NodeId("asyncua-made", space.directory.bridge_ns),
        ua.QualifiedName("Level", space.directory.tag_ns),
        0.0,
        VT.Float,
    )
    theirs = theirs_node.nodeid
    aspace = server.iserver.aspace
    assert set(aspace[ours].attributes) == set(aspace[theirs].attributes)
    deliberate = {
        A.NodeId: "a different node",
        A.Description: "asyncua copies the name, the bridge uses WinCC's description (none here)",
        A.Value: "null + BadWaitingForInitialData until the first poll",
    }
    for attr in aspace[theirs].attributes:
        mine, ref = await read(server, ours, attr), await read(server, theirs, attr)
        assert mine.StatusCode == ref.StatusCode or attr == A.Value, attr
        if attr in deliberate:
            continue
        assert mine.Value.VariantType == ref.Value.VariantType, attr
        assert mine.Value.Value == ref.Value.Value, attr
    assert (await read(server, ours, A.NodeId)).Value == ua.Variant(ours, VT.NodeId)

    # references: same shape (parent inverse + HasTypeDefinition); the bridge organizes tags in folders with
    # Organizes (FolderType semantics) where add_variable always uses HasComponent
    def shape(node_id: ua.NodeId) -> list[tuple[bool, int]]:
        return sorted((r.IsForward, r.NodeClass) for r in aspace[node_id].references)

    assert shape(ours) == shape(theirs)
    typedef = [r for r in aspace[ours].references if r.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasTypeDefinition)]
    ref_typedef = [
        r for r in aspace[theirs].references if r.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasTypeDefinition)
    ]
    assert [(r.NodeId, r.BrowseName, r.NodeClass) for r in typedef] == [
        (r.NodeId, r.BrowseName, r.NodeClass) for r in ref_typedef
    ]


# ---- subscriptions ----------------------------------------------------------------------------------------------
class Collector:
    def __init__(self) -> None:
        self.values: list[tuple[ua.NodeId, Any, ua.StatusCode]] = []
        self.events: list[Any] = []

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.values.append((node.nodeid, val, data.monitored_item.Value.StatusCode))

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


async def test_datachange_subscriptions_see_writes(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    level = space.directory.node_id("Plant.Tank1.Level")
    got = Collector()
    sub = await server.create_subscription(20, got)
    try:
        await sub.subscribe_data_change(server.get_node(level))
        await wait_until(lambda: got.values, what="initial notification")
        assert got.values[0][2].value == ua.StatusCodes.BadWaitingForInitialData
        await server.iserver.aspace.write_attribute_value(level, A.Value, ua.DataValue(ua.Variant(4.5, VT.Float)))
        await wait_until(lambda: any(v == 4.5 for _, v, _ in got.values), what="written value")
    finally:
        await sub.delete()


# ---- re-browse ---------------------------------------------------------------------------------------------------
async def test_update_adds_removes_and_keeps_node_ids(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    events = Collector()
    sub = await server.create_subscription(20, events)
    try:
        await sub.subscribe_events(server.nodes.server, ua.ObjectIds.GeneralModelChangeEventType)
        new_model = [i for i in PLANT if not (isinstance(i, TagInfo) and i.name in ("Loose", "Plant.Tank1.Name"))]
        new_model.append(tag("Plant.Tank2.Level", DataType.float, ("Plant", "Tank2"), unit="m3"))
        added, removed = await space.update(new_model)
        assert added == ["Plant.Tank2.Level"]
        assert sorted(removed) == ["Loose", "Plant.Tank1.Name"]
        assert "Loose" not in d and d.get("Plant.Tank2.Level") is not None
        assert server.iserver.aspace.get(ua.NodeId("Loose", d.tag_ns)) is None
        dv = await read(server, ua.NodeId("Loose", d.tag_ns), A.Value)
        assert dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
        tank1 = [r.NodeId.Identifier for r in await refs(server, d.folder_node_id(("Plant", "Tank1")))]
        assert "Plant.Tank1.Name" not in tank1 and "Plant.Tank1.Level" in tank1
        tank2 = await refs(server, d.folder_node_id(("Plant", "Tank2")))
        assert [r.NodeId for r in tank2] == [d.node_id("Plant.Tank2.Level")]
        await wait_until(lambda: events.events, what="GeneralModelChangeEvent")
        changes = {(c.Affected, c.Verb) for c in events.events[0].Changes}
        assert (d.node_id("Loose"), ua.ModelChangeStructureVerbMask.NodeDeleted.value) in changes
        assert (d.node_id("Plant.Tank2.Level"), ua.ModelChangeStructureVerbMask.NodeAdded.value) in changes
        assert (d.folder_node_id(("Plant", "Tank2")), ua.ModelChangeStructureVerbMask.NodeAdded.value) in changes
    finally:
        await sub.delete()


async def test_update_without_changes_emits_nothing(
    server: Server, space: AddressSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    await space.build(PLANT)
    emitted: list[Any] = []

    async def spy(changes: Any) -> None:
        emitted.append(changes)

    monkeypatch.setattr(space, "_emit_model_change", spy)
    assert await space.update(PLANT) == ([], [])
    assert space.last_changed == [] and emitted == []
    await space.update(PLANT[:-1])
    assert len(emitted) == 1


async def test_removed_tag_tells_its_monitored_items_and_can_come_back(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    got = Collector()
    sub = await server.create_subscription(20, got)
    try:
        handle = await sub.subscribe_data_change(server.get_node(d.node_id("Loose")))
        await wait_until(lambda: got.values, what="initial notification")
        await space.update([i for i in PLANT if not (isinstance(i, TagInfo) and i.name == "Loose")])
        await wait_until(
            lambda: any(s.value == ua.StatusCodes.BadNodeIdUnknown for _, _, s in got.values), what="BadNodeIdUnknown"
        )
        await sub.unsubscribe(handle)  # asyncua must not look the deleted node up again
        added, _ = await space.update(PLANT)
        assert added == ["Loose"]
        assert (
            await read(server, d.node_id("Loose"), A.Value)
        ).StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
    finally:
        await sub.delete()


async def test_changed_tag_is_replaced_in_place(server: Server, space: AddressSpace) -> None:
    await space.build(PLANT)
    d = space.directory
    level = d.node_id("Plant.Tank1.Level")
    aspace = server.iserver.aspace
    await aspace.write_attribute_value(level, A.Value, ua.DataValue(ua.Variant(2.0, VT.Float)))
    got = Collector()
    sub = await server.create_subscription(20, got)
    try:
        await sub.subscribe_data_change(server.get_node(level))
        await wait_until(lambda: got.values, what="initial notification")
        # unit, limits and description change: same node, value kept, properties updated
        changed = [
            tag(
                "Plant.Tank1.Level",
                DataType.float,
                ("Plant", "Tank1"),
                unit="mm",
                low=0,
                high=10000,
                description="in mm",
                writable=True,
                archived=True,
            )
            if isinstance(i, TagInfo) and i.name == "Plant.Tank1.Level"
            else i
            for i in PLANT
        ]
        assert await space.update(changed) == ([], [])
        assert space.last_changed == ["Plant.Tank1.Level"]
        assert (await read(server, level, A.Value)).Value.Value == 2.0
        assert (await read(server, level, A.Description)).Value.Value.Text == "in mm"
        props = {
            (await p.read_browse_name()).Name: await p.read_value()
            for p in await server.get_node(level).get_properties()
        }
        assert props["EURange"] == ua.Range(Low=0.0, High=10000.0)
        assert props["EngineeringUnits"].DisplayName.Text == "mm"
        assert d.get("Plant.Tank1.Level").unit == "mm"
        # type change: the old value is meaningless, subscribers see BadWaitingForInitialData again
        retyped = [
            tag("Plant.Tank1.Level", DataType.string, ("Plant", "Tank1"))
            if isinstance(i, TagInfo) and i.name == "Plant.Tank1.Level"
            else i
            for i in changed
        ]
        await space.update(retyped)
        assert (await read(server, level, A.DataType)).Value.Value == ua.NodeId(VT.String.value)
        assert await server.get_node(level).read_type_definition() == ua.NodeId(ua.ObjectIds.BaseDataVariableType)
        assert await server.get_node(level).get_properties() == []
        assert aspace.get(property_node_id("Plant.Tank1.Level", "EURange", d.bridge_ns)) is None
        await wait_until(
            lambda: got.values[-1][2].value == ua.StatusCodes.BadWaitingForInitialData, what="reset notification"
        )
        # still exactly one reference from the folder, with the new type definition
        from_folder = [r for r in await refs(server, d.folder_node_id(("Plant", "Tank1"))) if r.NodeId == level]
        assert [r.TypeDefinition for r in from_folder] == [ua.NodeId(ua.ObjectIds.BaseDataVariableType)]
    finally:
        await sub.delete()


async def test_moved_tag_changes_folder_and_empty_folders_go(server: Server, space: AddressSpace) -> None:
    await space.build([tag("T", folder=("Old", "Sub"))])
    d = space.directory
    await space.update([tag("T", folder=("New",))])
    assert [r.NodeId for r in await refs(server, d.folder_node_id(("New",)))] == [d.node_id("T")]
    assert server.iserver.aspace.get(d.folder_node_id(("Old", "Sub"))) is None
    assert server.iserver.aspace.get(d.folder_node_id(("Old",))) is None
    assert [r.NodeId for r in await refs(server, space.root_node_id)] == [d.folder_node_id(("New",))]
    up = await refs(server, d.node_id("T"), ua.BrowseDirection.Inverse, ua.ObjectIds.Organizes)
    assert [r.NodeId for r in up] == [d.folder_node_id(("New",))]


async def test_listed_empty_folders_stay_while_listed(server: Server, space: AddressSpace) -> None:
    await space.build([Folder(("Empty",))])
    d = space.directory
    assert await space.update([Folder(("Empty",))]) == ([], [])
    assert server.iserver.aspace.get(d.folder_node_id(("Empty",))) is not None
    await space.update([])
    assert server.iserver.aspace.get(d.folder_node_id(("Empty",))) is None


async def test_update_on_an_empty_start_builds_everything(server: Server, space: AddressSpace) -> None:
    await space.build([])  # WinCC unreachable and no snapshot
    assert await refs(server, space.root_node_id) == []
    added, removed = await space.update(PLANT)
    assert sorted(added) == sorted(t.name for t in PLANT if isinstance(t, TagInfo)) and removed == []
    assert (await read(server, space.directory.node_id("Plant.Tank1.Level"), A.DataType)).Value.Value == ua.NodeId(
        VT.Float.value
    )


async def test_many_tags_in_one_folder(server: Server, space: AddressSpace) -> None:
    items = [
        tag(f"Big.T{i:05d}", DataType.int32 if i % 2 else DataType.float, ("Big",), unit="bar" if i % 3 == 0 else None)
        for i in range(12_000)
    ]
    await space.build(items)
    children = await refs(server, space.directory.folder_node_id(("Big",)))
    assert len(children) == 12_000
    assert len({r.NodeId for r in children}) == 12_000
    assert len([r for r in children if r.TypeDefinition == ua.NodeId(ua.ObjectIds.AnalogItemType)]) == 4_000


class _CountingRefs(list):  # type: ignore[type-arg]
    """A folder's reference list that counts every element visited by iteration or indexing (the work a scan
    does), whatever the AddressSpace code does with it."""

    visits = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for ref in super().__iter__():
            self.visits += 1
            yield ref

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        item = super().__getitem__(key)
        self.visits += len(item) if isinstance(key, slice) else 1
        return item


async def test_changing_many_tags_of_one_folder_is_linear(server: Server, space: AddressSpace) -> None:
    n = 5_000
    items = [tag(f"Big.T{i:05d}", DataType.float, ("Big",)) for i in range(n)]
    await space.build(items)
    d = space.directory
    folder = server.iserver.aspace.get(d.folder_node_id(("Big",)))
    counted = folder.references = _CountingRefs(folder.references)
    before = list.__len__(counted)
    # every tag changes in place (a unit: now AnalogItemType), and ten move out of the folder
    changed = [
        tag(t.name, DataType.float, ("Big",) if i >= 10 else ("Elsewhere",), unit="bar") for i, t in enumerate(items)
    ]
    await space.update(changed)
    assert space.last_changed == [t.name for t in changed]
    # linear: a few visits per reference of the folder (one pass to index it, one to drop the moved tags, one
    # check per changed tag). Scanning the folder for each changed tag visits n * n / 2 = 12.5 million references.
    assert counted.visits <= 5 * before, counted.visits
    # and the result is right: same order, new type definitions, the moved ones gone from the folder
    children = await refs(server, d.folder_node_id(("Big",)))
    assert [r.NodeId for r in children] == [d.node_id(t.name) for t in items[10:]]
    assert {r.TypeDefinition for r in children} == {ua.NodeId(ua.ObjectIds.AnalogItemType)}
    assert [r.NodeId for r in await refs(server, d.folder_node_id(("Elsewhere",)))] == [
        d.node_id(t.name) for t in items[:10]
    ]


@pytest.mark.parametrize("count", [3, 2_500])  # under and over the size where node_ids() takes one pass
async def test_node_ids_in_bulk_are_the_nodes_own(server: Server, space: AddressSpace, count: int) -> None:
    names = [f"Plant.Bulk.T{i}" for i in range(count)]
    await space.build([tag(n, DataType.int32, ("Plant", "Bulk")) for n in names])
    d = space.directory
    asked = [*names, "Plant.Bulk.NotThere"]
    ids = d.node_ids(asked)
    assert list(ids) == asked
    for name in names:  # the very NodeId the node holds: one per tag in the process, not a copy
        assert ids[name] is server.iserver.aspace.get(ua.NodeId(name, d.tag_ns)).nodeid
    assert ids["Plant.Bulk.NotThere"] == ua.NodeId("Plant.Bulk.NotThere", d.tag_ns, ua.NodeIdType.String)
    assert d.only("Plant.Bulk.T1").node_ids(names[:2]) == {n: d.node_id(n) for n in names[:2]}
