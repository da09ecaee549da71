"""Scale-out over real interfaces: shards chosen by include/exclude over one simulator, and several WinCC stations
(simulators of both dialects) behind one endpoint. Simulators and bridges run as subprocesses; the asyncua client
browses and reads over TCP from this process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import free_port, wait_until
from tests.integration.conftest import WINCC_PASSWORD, Stack, start_simulator

NS_URI = "urn:wincc-opcua-bridge:tags"
GEN_TAGS = 2000  # two generated folders, G000 and G001, besides the demo plant
# asyncua's client drops a server that misses its once-a-second probe; several bridges and simulators start on a
# shared 2-core machine here, where a start-up pause of a second happens (bench/ measures the event loop instead)
WATCHDOG_S = 5.0


async def _served(stack: Stack) -> tuple[set[str], set[str]]:
    """(tag NodeIds, folder NodeIds) below Objects/WinCC, each as 'nsu=<uri>;s=<id>' text; every tag once."""
    client = Client(stack.url_for("reader"), timeout=20, watchdog_intervall=WATCHDOG_S)
    await client.connect()
    try:
        uris = await client.get_namespace_array()
        root = client.nodes.objects
        wincc = next(d for d in await root.get_children_descriptions() if d.BrowseName.Name == "WinCC")
        tags: list[str] = []
        folders: list[str] = []
        pending = [wincc.NodeId]
        while pending:
            node = client.get_node(pending.pop())
            for d in await node.get_children_descriptions(refs=ua.ObjectIds.Organizes):
                text = f"nsu={uris[d.NodeId.NamespaceIndex]};s={d.NodeId.Identifier}"
                if d.NodeClass == ua.NodeClass.Variable:
                    tags.append(text)
                else:
                    folders.append(text)
                    pending.append(d.NodeId)
        assert len(tags) == len(set(tags)), "a tag is organised twice"
        return set(tags), set(folders)
    finally:
        await client.disconnect()


async def test_two_shards_serve_exactly_the_unsharded_tag_set(bridge_stack) -> None:
    whole = bridge_stack("dp", sim_args=("--tags", str(GEN_TAGS)))
    over_the_same = {"url": whole.sim_url}
    shard_a = bridge_stack(
        "dp",
        start_sim=False,
        config={"wincc": {**over_the_same, "include": ["System1.Gen.*"], "exclude": ["System1.Gen.G001.*"]}},
    )
    shard_b = bridge_stack(
        "dp", start_sim=False, config={"wincc": {**over_the_same, "exclude": ["System1.Gen.G000.*"]}}
    )

    all_tags, all_folders = await _served(whole)
    a_tags, a_folders = await _served(shard_a)
    b_tags, b_folders = await _served(shard_b)

    assert len(all_tags) > GEN_TAGS
    assert a_tags and b_tags
    assert not a_tags & b_tags, "a tag is served by both shards"
    assert a_tags | b_tags == all_tags
    assert all("System1.Gen.G000." in t for t in a_tags)
    # every folder a shard shows is one the unsharded bridge shows, and none is empty there
    assert a_folders | b_folders == all_folders
    assert not any("G001" in f for f in a_folders) and not any("G000" in f for f in b_folders)
    assert not any(f.endswith("s=System1/Tank1") for f in a_folders)

    # excluded tags are not polled either: each shard reads only its own tags from WinCC
    n_whole, n_a, n_b = (_metric(s, "wincc_bridge_tags") for s in (whole, shard_a, shard_b))
    assert n_a + n_b == n_whole == len(all_tags)
    client = Client(shard_a.url_for("reader"), timeout=10, watchdog_intervall=WATCHDOG_S)
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        dv = await client.get_node(ua.NodeId("System1.Tank1.Level", ns)).read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
        mine = client.get_node(ua.NodeId("System1.Gen.G000.Tag000003", ns))
        await wait_until(lambda: _good(mine), timeout=15, what="a shard's own tag polled")
    finally:
        await client.disconnect()


def _metric(stack: Stack, name: str) -> float:
    for line in httpx.get(stack.health_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _good(node) -> bool:
    return (await node.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()


async def _bad_comm(node) -> bool:
    dv = await node.read_data_value(raise_on_bad_status=False)
    return dv.StatusCode.value == ua.StatusCodes.BadCommunicationError


def _monitor(node_id: ua.NodeId, handle: int, sampling_ms: float) -> ua.MonitoredItemCreateRequest:
    params = ua.MonitoringParameters(
        ClientHandle=handle, SamplingInterval=sampling_ms, QueueSize=10, DiscardOldest=True
    )
    item = ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value)
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=item, MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params
    )


async def _service_level(client: Client) -> int:
    return await client.get_node(ua.ObjectIds.Server_ServiceLevel).read_value()


async def test_two_stations_behind_one_endpoint_one_down(bridge_stack, tmp_path) -> None:
    north, north_port, _ = start_simulator(tmp_path, "dp")
    south, south_port, _ = start_simulator(tmp_path, "restservice")
    try:
        stack = bridge_stack(
            "dp",
            start_sim=False,
            config={
                "sources": [
                    {"name": "north", "url": f"http://127.0.0.1:{north_port}"},
                    {
                        "name": "south",
                        "url": f"http://127.0.0.1:{south_port}/WinCCRestService",
                        "dialect": "restservice",
                    },
                ]
            },
        )
        client = Client(stack.url_for("operator"), timeout=10, watchdog_intervall=WATCHDOG_S)
        await client.connect()
        try:
            ns = await client.get_namespace_index(NS_URI)
            wincc = next(
                d for d in await client.nodes.objects.get_children_descriptions() if d.BrowseName.Name == "WinCC"
            )
            children = await client.get_node(wincc.NodeId).get_children_descriptions(refs=ua.ObjectIds.Organizes)
            folder_type = ua.NodeId(ua.ObjectIds.FolderType)
            stations = sorted(d.BrowseName.Name for d in children if d.TypeDefinition == folder_type)
            assert stations == ["north", "south"]
            north_level = client.get_node(ua.NodeId("north/System1.Tank1.Level", ns))
            south_level = client.get_node(ua.NodeId("south/Tank1_Level", ns))
            assert (await north_level.read_browse_name()).Name == "Level"
            await wait_until(lambda: _good(north_level), timeout=15, what="north Good")
            await wait_until(lambda: _good(south_level), timeout=15, what="south Good")
            assert await wait_until(lambda: _service_level_is(client, 255), timeout=10, what="ServiceLevel 255")

            # writes go to the tag's own station
            setpoint = client.get_node(ua.NodeId("south/Tank1_LevelSetpoint", ns))
            await setpoint.write_value(ua.DataValue(ua.Variant(6.5, ua.VariantType.Float)))
            auth = ("opcua", WINCC_PASSWORD)
            south_api = f"http://127.0.0.1:{south_port}/WinCCRestService"
            answer = httpx.get(f"{south_api}/tagManagement/Value/Tank1_LevelSetpoint", auth=auth, timeout=5)
            assert answer.json()["value"] == pytest.approx(6.5)
            unchanged = httpx.get(
                f"http://127.0.0.1:{north_port}/api/dp/System1.Tank1.LevelSetpoint", auth=auth, timeout=5
            )
            assert unchanged.json()["value"] != pytest.approx(6.5)

            # monitored items on either station get that station's real poll group back (each Demand hears them)
            sub = await client.create_subscription(100, None)
            params = ua.CreateMonitoredItemsParameters(
                SubscriptionId=sub.subscription_id,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ItemsToCreate=[_monitor(north_level.nodeid, 1, 0), _monitor(south_level.nodeid, 2, 300)],
            )
            results = await client.uaclient.create_monitored_items(params)
            assert [(r.StatusCode.is_good(), r.RevisedSamplingInterval) for r in results] == [
                (True, 200.0),
                (True, 1000.0),
            ]
            await sub.delete()

            # history comes from the tag's own station's archive (restservice: through its archive tag)
            end = datetime.now(UTC)
            for node in (north_level, south_level):
                values = await node.read_raw_history(end - timedelta(minutes=10), end)
                assert values, await node.read_browse_name()

            # the browse command lists every station under the names the bridge serves
            env = {**os.environ, "WINCC_PASSWORD": WINCC_PASSWORD}
            listing = subprocess.run(
                [sys.executable, "-m", "bridge", "browse", "--config", str(stack.config_path)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert listing.returncode == 0, listing.stderr
            assert "= north/System1.Tank1.Level" in listing.stdout and "= south/Tank1_Level" in listing.stdout

            south.terminate()
            south.wait(10)
            await wait_until(lambda: _bad_comm(south_level), timeout=15, what="south Bad while its WinCC is down")
            assert await _good(north_level), "the other station's tags stay Good"
            level = await wait_until(lambda: _service_level_is(client, 100), timeout=10, what="ServiceLevel share")
            assert level == 100
            assert _metric(stack, "wincc_bridge_source_south_reachable") == 0.0
            assert _metric(stack, "wincc_bridge_source_north_reachable") == 1.0
            assert await _status(client, "south/BridgeStatus.Connected") is False
            assert await _status(client, "north/BridgeStatus.Connected") is True
            assert await wait_until(lambda: _status_is(client, "BridgeStatus.State", "degraded"), timeout=5)

            south, _, _ = start_simulator(tmp_path, "restservice", port=south_port)
            await wait_until(lambda: _good(south_level), timeout=30, what="south Good again")
            assert await wait_until(lambda: _service_level_is(client, 255), timeout=10, what="ServiceLevel back")
        finally:
            await client.disconnect()
    finally:
        for sim in (north, south):
            if sim.poll() is None:
                sim.terminate()
                sim.wait(10)


async def _status(client: Client, field: str) -> object:
    ns = await client.get_namespace_index(NS_URI + "/bridge")
    return await client.get_node(ua.NodeId(field, ns)).read_value()


async def _status_is(client: Client, field: str, value: object) -> bool:
    return await _status(client, field) == value


async def _service_level_is(client: Client, level: int) -> int | None:
    value = await _service_level(client)
    return value if value == level else None


async def test_a_station_down_at_start_joins_when_it_answers(bridge_stack, tmp_path) -> None:
    north, north_port, _ = start_simulator(tmp_path, "dp")
    south_port = free_port()
    south = None
    try:
        stack = bridge_stack(
            "dp",
            start_sim=False,
            config={
                "sources": [
                    {"name": "north", "url": f"http://127.0.0.1:{north_port}"},
                    {"name": "south", "url": f"http://127.0.0.1:{south_port}"},
                ]
            },
        )
        client = Client(stack.url_for("reader"), timeout=10, watchdog_intervall=WATCHDOG_S)
        await client.connect()
        try:
            ns = await client.get_namespace_index(NS_URI)
            north_level = client.get_node(ua.NodeId("north/System1.Tank1.Level", ns))
            south_level = client.get_node(ua.NodeId("south/System1.Tank1.Level", ns))
            await wait_until(lambda: _good(north_level), timeout=15, what="north Good while south never answered")
            assert await wait_until(lambda: _service_level_is(client, 100), timeout=10)
            dv = await south_level.read_data_value(raise_on_bad_status=False)
            assert dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown  # not browsed yet: nothing to serve

            south, _, _ = start_simulator(tmp_path, "dp", port=south_port)
            await wait_until(lambda: _good(south_level), timeout=45, what="south browsed and polled once it answers")
            assert await wait_until(lambda: _service_level_is(client, 255), timeout=10)
            assert await _good(north_level)
        finally:
            await client.disconnect()
    finally:
        for sim in (north, south):
            if sim is not None and sim.poll() is None:
                sim.terminate()
                sim.wait(10)
