"""Attributes tags of one kind share (bridge/opcua/_asyncua, section 16): a change to one node - a Write, a value
callback, a monitored item - never reaches another node, checked through asyncua's own services on a real (not
started) server."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Server, ua

from bridge.opcua._asyncua import SharedAttributes, node_table
from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.tags import TagDirectory
from bridge.wincc.models import DataType, TagInfo
from tests.helpers import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

A = ua.AttributeIds
VT = ua.VariantType
_ids = itertools.count()
_READ = ua.AccessLevel.CurrentRead.mask
_READ_WRITE = _READ | ua.AccessLevel.CurrentWrite.mask
TWINS = [TagInfo(name=f"Twin{i}", data_type=DataType.double, folder=(), writable=True) for i in range(3)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> Server:
    srv = Server()
    await srv.init()
    return srv


@pytest_asyncio.fixture(loop_scope="module")
async def space(server: Server) -> AddressSpace:
    uri = f"urn:shared:{next(_ids)}"
    ns = [await server.register_namespace(uri + suffix) for suffix in ("", "/folders", "/bridge")]
    built = AddressSpace(server, TagDirectory(*ns))
    await built.build(TWINS)
    return built


def ids(space: AddressSpace) -> list[ua.NodeId]:
    return [space.directory.node_id(t.name) for t in TWINS]


async def read(server: Server, node_id: ua.NodeId, attr: ua.AttributeIds) -> Any:
    params = ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=node_id, AttributeId=attr)])
    dv = (await server.iserver.isession.read(params))[0]
    dv.StatusCode.check()
    return dv.Value.Value


async def write(server: Server, node_id: ua.NodeId, attr: ua.AttributeIds, variant: ua.Variant) -> ua.StatusCode:
    params = ua.WriteParameters(
        NodesToWrite=[ua.WriteValue(NodeId=node_id, AttributeId=attr, Value=ua.DataValue(variant))]
    )
    return (await server.iserver.isession.write(params))[0]


class Collector:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(val)


async def test_tags_of_one_kind_share_their_attributes(server: Server, space: AddressSpace) -> None:
    """The premise of the tests below: without sharing they would prove nothing."""
    nodes = node_table(server)
    a, b, _ = (nodes[i].attributes for i in ids(space))
    assert isinstance(a, SharedAttributes) and isinstance(b, SharedAttributes)
    assert a.template is b.template
    assert A.AccessLevel in a.template and a.own(A.AccessLevel) is None
    assert A.AccessLevel in a and A.Value in a and A.BrowseName in a
    assert set(a.keys()) == set(b.keys()) and len(a) == len(set(a.keys())) == 15


async def test_a_write_to_a_shared_attribute_changes_that_node_only(server: Server, space: AddressSpace) -> None:
    first, second, third = ids(space)
    status = await write(server, first, A.AccessLevel, ua.Variant(_READ, VT.Byte))
    assert status.is_good()
    assert await read(server, first, A.AccessLevel) == _READ
    assert await read(server, second, A.AccessLevel) == _READ_WRITE
    assert await read(server, third, A.AccessLevel) == _READ_WRITE
    # asyncua's own address-space write, as the bridge's services use it
    aspace = server.iserver.aspace
    status = await aspace.write_attribute_value(second, A.Description, ua.DataValue(ua.LocalizedText("mine")))
    assert status.is_good()
    assert await read(server, second, A.Description) == ua.LocalizedText("mine")
    assert await read(server, first, A.Description) == ua.LocalizedText()
    assert await read(server, third, A.Description) == ua.LocalizedText()
    # and a node built afterwards still gets the shared, unchanged value
    assert await read(server, first, A.DataType) == ua.NodeId(ua.ObjectIds.Double)


async def test_a_value_callback_on_a_shared_attribute_stays_on_its_node(server: Server, space: AddressSpace) -> None:
    first, second, _ = ids(space)
    aspace = server.iserver.aspace
    status = aspace.set_attribute_value_callback(
        first, A.MinimumSamplingInterval, lambda _nid, _attr: ua.DataValue(ua.Variant(123.0, VT.Double))
    )
    assert status.is_good()
    assert await read(server, first, A.MinimumSamplingInterval) == 123.0
    assert await read(server, second, A.MinimumSamplingInterval) == 0.0
    # the NodeId attribute is one shared callback: each node still answers its own id
    assert await read(server, first, A.NodeId) == first
    assert await read(server, second, A.NodeId) == second


async def test_a_monitored_item_on_a_shared_attribute_sees_its_node_only(server: Server, space: AddressSpace) -> None:
    first, second, third = ids(space)
    got = Collector()
    sub = await server.create_subscription(20, got)
    try:
        handle = await sub.subscribe_data_change(server.get_node(first), attr=A.UserWriteMask)
        await wait_until(lambda: got.values == [0], what="initial notification")
        aspace = server.iserver.aspace
        for other in (second, third):
            assert (
                await aspace.write_attribute_value(other, A.UserWriteMask, ua.DataValue(ua.Variant(7, VT.UInt32)))
            ).is_good()
        assert (
            await aspace.write_attribute_value(first, A.UserWriteMask, ua.DataValue(ua.Variant(5, VT.UInt32)))
        ).is_good()
        await wait_until(lambda: got.values == [0, 5], what="the node's own change, and no other")
        # no other node carries the item's callback
        nodes = node_table(server)
        assert all(not nodes[i].attributes[A.UserWriteMask].datachange_callbacks for i in (second, third))
        await sub.unsubscribe(handle)
        assert not nodes[first].attributes[A.UserWriteMask].datachange_callbacks
    finally:
        await sub.delete()


async def test_a_replaced_tag_keeps_its_items_and_takes_the_new_kind(server: Server, space: AddressSpace) -> None:
    first, second, _ = ids(space)
    got = Collector()
    sub = await server.create_subscription(20, got)
    try:
        await sub.subscribe_data_change(server.get_node(first), attr=A.AccessLevel)
        await wait_until(lambda: got.values == [_READ_WRITE], what="initial notification")
        read_only = TagInfo(name="Twin0", data_type=DataType.double, folder=(), writable=False)
        await space.update([read_only, *TWINS[1:]])
        await wait_until(lambda: got.values == [_READ_WRITE, _READ], what="the replaced access level")
        assert await read(server, first, A.AccessLevel) == _READ
        assert await read(server, first, A.UserAccessLevel) == _READ
        assert await read(server, second, A.AccessLevel) == _READ_WRITE
    finally:
        await sub.delete()


async def test_names_are_read_written_and_renamed_per_node(server: Server, space: AddressSpace) -> None:
    """BrowseName, DisplayName and Description are kept as bare names and made into DataValues on read."""
    first, second, _ = ids(space)
    assert await read(server, first, A.BrowseName) == ua.QualifiedName("Twin0", first.NamespaceIndex)
    assert await read(server, first, A.DisplayName) == ua.LocalizedText("Twin0")
    aspace = server.iserver.aspace
    status = await aspace.write_attribute_value(first, A.DisplayName, ua.DataValue(ua.LocalizedText("Renamed")))
    assert status.is_good()
    assert await read(server, first, A.DisplayName) == ua.LocalizedText("Renamed")
    assert await read(server, second, A.DisplayName) == ua.LocalizedText("Twin1")
    # a re-browse that renames a tag tells the DisplayName's monitored item, and only that once
    got = Collector()
    sub = await server.create_subscription(20, got)
    try:
        await sub.subscribe_data_change(server.get_node(second), attr=A.DisplayName)
        await wait_until(lambda: got.values == [ua.LocalizedText("Twin1")], what="initial notification")
        renamed = TagInfo(name="Twin1", data_type=DataType.double, folder=(), writable=True, display_name="Pump")
        described = TagInfo(name="Twin2", data_type=DataType.double, folder=(), writable=True, description="spare")
        await space.update([TWINS[0], renamed, described])
        await wait_until(lambda: got.values == [ua.LocalizedText("Twin1"), ua.LocalizedText("Pump")], what="rename")
        assert await read(server, second, A.BrowseName) == ua.QualifiedName("Pump", second.NamespaceIndex)
        assert await read(server, ids(space)[2], A.Description) == ua.LocalizedText("spare")
        assert await read(server, first, A.Description) == ua.LocalizedText()
    finally:
        await sub.delete()
