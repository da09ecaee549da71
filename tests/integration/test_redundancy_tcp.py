"""Two bridges on the same WinCC as a non-transparent redundant pair (opcua.redundancy): a client reads
RedundancySupport, ServerUriArray and ServiceLevel from each and can pick the healthier one."""

from __future__ import annotations

import pytest
from asyncua import Client, ua

from tests.helpers import wait_until

O = ua.ObjectIds
URI_A, URI_B = "urn:plant:bridge-a", "urn:plant:bridge-b"


@pytest.fixture(scope="module")
def pair(bridge_stack):
    a = bridge_stack(
        "dp", config={"opcua": {"application_uri": URI_A, "redundancy": {"mode": "hot", "partners": [URI_B]}}}
    )
    b = bridge_stack(
        "dp",
        start_sim=False,
        config={
            "wincc": {"url": a.sim_url},
            "opcua": {"application_uri": URI_B, "redundancy": {"mode": "hot", "partners": [URI_A]}},
        },
    )
    return a, b


async def test_each_member_names_the_set_and_its_service_level(pair) -> None:
    for stack, own, partner in ((pair[0], URI_A, URI_B), (pair[1], URI_B, URI_A)):
        client = Client(stack.url_for("reader"), timeout=10)
        await client.connect()
        try:
            redundancy = client.get_node(ua.NodeId(O.Server_ServerRedundancy))
            support = await client.get_node(ua.NodeId(O.Server_ServerRedundancy_RedundancySupport)).read_value()
            assert support == ua.RedundancySupport.Hot
            assert await redundancy.read_type_definition() == ua.NodeId(O.NonTransparentRedundancyType)
            uris = await redundancy.get_child("0:ServerUriArray")
            assert await uris.read_value() == [own, partner]
            level = client.get_node(ua.NodeId(O.Server_ServiceLevel))
            assert await wait_until(lambda level=level: _healthy(level), timeout=10, what=f"{own} healthy")
        finally:
            await client.disconnect()


async def _healthy(node) -> bool:
    return (await node.read_value()) >= 200
