"""The bridge against the restservice dialect (WinCC V7.5/V8 WinCCRestService), and REST efficiency at scale."""

from __future__ import annotations

import math

import pytest
from asyncua import Client, ua

from tests.helpers import wait_until, wait_until_sync

NS_URI = "urn:wincc-opcua-bridge:tags"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("restservice", config={"wincc": {"rebrowse_s": 1}})


async def test_restservice_browse_read_and_20_node_write_in_one_call(stack) -> None:
    client = Client(stack.url_for("operator"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        level = client.get_node(ua.NodeId("Tank1_Level", ns))
        assert (await level.read_display_name()).Text == "Tank1_Level"
        await wait_until(lambda: _good(level), timeout=10)
        folder_ns = await client.get_namespace_index(NS_URI + "/folders")
        group = client.get_node(ua.NodeId("PLC1/Tank1", folder_ns))
        assert level.nodeid in [c.nodeid for c in await group.get_children()]
        stack.sim_control("/_sim/stats/reset", {})
        # 20 nodes: 18 good writes to the Int16 counter and setpoints, 2 refused by WinCC's range check
        good = [("Counters_Int16Value", ua.Variant(i, ua.VariantType.Int16)) for i in range(1, 17)]
        good += [
            ("Tank1_LevelSetpoint", ua.Variant(3.0, ua.VariantType.Float)),
            ("Tank1_InletValve", ua.Variant(False, ua.VariantType.Boolean)),
        ]
        bad = [
            ("Tank1_Level", ua.Variant(1.0, ua.VariantType.Float)),  # read-only in WinCC: errorCode 4
            ("Counters_Batch", ua.Variant("x", ua.VariantType.String)),
        ]  # type: refused before REST
        nodes = [
            ua.WriteValue(NodeId=ua.NodeId(n, ns), AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(v))
            for n, v in good + bad
        ]
        results = await client.uaclient.write(ua.WriteParameters(NodesToWrite=nodes))
        assert [r.value for r in results[:18]] == [ua.StatusCodes.Good] * 18
        assert [r.value for r in results[18:]] == [ua.StatusCodes.BadNotWritable, ua.StatusCodes.BadTypeMismatch]
        stats = stack.sim_stats()
        # the same NodeId 16 times is written in order, one REST call per round; distinct tags share a call (the
        # first round, 4 tags: the batch PUT), later rounds have one tag each (the single-tag PUT)
        assert stats["requests"].get("PUT /tagManagement/Values", 0) == 1
        assert stats["requests"].get("PUT /tagManagement/Value/{name}", 0) == 15
        assert [w["value"] for w in stats["writes"] if w["name"] == "Counters_Int16Value"] == list(range(1, 17))
    finally:
        await client.disconnect()


async def test_rebrowse_adds_tags_and_a_20_node_write_is_one_rest_call(stack) -> None:
    names = [f"Extra_W{i:02d}" for i in range(20)]
    stack.sim_control(
        "/_sim/tags",
        {"add": [{"name": f"System1.Extra.W{i:02d}", "type": "int32", "writable": True} for i in range(20)]},
    )
    client = Client(stack.url_for("operator"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        last = client.get_node(ua.NodeId(names[-1], ns))
        # the re-browse (every second here) brings the new tags in, with their NodeIds
        await wait_until(lambda: _good(last), timeout=20, what="new tags after re-browse")
        stack.sim_control("/_sim/stats/reset", {})
        nodes = [
            ua.WriteValue(
                NodeId=ua.NodeId(n, ns),
                AttributeId=ua.AttributeIds.Value,
                Value=ua.DataValue(ua.Variant(i, ua.VariantType.Int32)),
            )
            for i, n in enumerate(names)
        ]
        results = await client.uaclient.write(ua.WriteParameters(NodesToWrite=nodes))
        assert all(r.is_good() for r in results), results
        stats = stack.sim_stats()
        assert stats["requests"].get("PUT /tagManagement/Values", 0) == 1
        assert sorted((w["name"], w["value"]) for w in stats["writes"]) == [(n, i) for i, n in enumerate(names)]
        # removed tags leave the address space
        stack.sim_control("/_sim/tags", {"remove": ["System1.Extra.W00"]})

        async def gone() -> bool:
            dv = await client.get_node(ua.NodeId(names[0], ns)).read_data_value(raise_on_bad_status=False)
            return dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown

        await wait_until(gone, timeout=20, what="removed tag deleted on re-browse")
    finally:
        await client.disconnect()


async def _good(node) -> bool:
    return (await node.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()


def test_10k_tags_at_batch_500_cost_20_reads_per_cycle(bridge_stack) -> None:
    stack = bridge_stack(
        "dp",
        sim_args=("--tags", "10000", "--change-rate", "0"),
        config={"sync": {"batch_size": 500, "idle_interval_ms": 2000, "interval_ms": 2000, "poll_groups_ms": [2000]}},
    )
    total = 10_000 + 20  # generated tags plus the demo plant

    stack.sim_control("/_sim/stats/reset", {})
    # three complete cycles: each ends with the one short batch (10,020 = 20 x 500 + 20)
    wait_until_sync(lambda: stack.sim_stats()["read_batches"].count(total % 500) >= 3, timeout=30)
    sizes = stack.sim_stats()["read_batches"]
    assert set(sizes) <= {500, total % 500}
    cycles = sizes.count(total % 500)
    full = sizes.count(500)
    # reads per cycle = ceil(N / batch_size) = 21; the first and last cycle may be cut by the reset and the read
    assert abs(full - (math.ceil(total / 500) - 1) * cycles) <= math.ceil(total / 500)
