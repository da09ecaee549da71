"""The bulk-built address space and the paging Browse service over real OPC UA TCP.

A small server process (tests/integration/_servers/address_space_server.py: AddressSpace + BrowseService wired
through BridgeInternalServer/ServiceHandlers, as bridge/app.py does) serves a folder of 10,000 tags; the
asyncua client here (another process, another event loop) and node-opcua page through it with
RequestedMaxReferencesPerNode and BrowseNext.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua

from tests.helpers import free_port, wait_until_sync

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
TAGS = 10_000
SERVER_MAX_REFS = 1000
SC = ua.StatusCodes


@dataclass
class Served:
    endpoint: str
    tag_ns: int
    folder_ns: int
    bridge_ns: int
    proc: subprocess.Popen[str]

    @property
    def big(self) -> ua.NodeId:
        return ua.NodeId("Big", self.folder_ns)

    def names(self) -> list[str]:
        return [f"Big.T{i:05d}" for i in range(TAGS)]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration._servers.address_space_server",
            "--port",
            str(port),
            "--tags",
            str(TAGS),
            "--max-refs",
            str(SERVER_MAX_REFS),
            "--max-cps",
            "5",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise AssertionError(f"test server did not start:\n{proc.stderr.read() if proc.stderr else ''}")
        info = json.loads(line)
        yield Served(f"opc.tcp://127.0.0.1:{port}/test", info["tag_ns"], info["folder_ns"], info["bridge_ns"], proc)
    finally:
        if proc.stdin:
            proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(served: Served) -> Any:
    c = Client(served.endpoint, timeout=30)
    await c.connect()
    try:
        yield c
    finally:
        await c.disconnect()


def desc(node_id: ua.NodeId) -> ua.BrowseDescription:
    return ua.BrowseDescription(
        NodeId=node_id,
        BrowseDirection=ua.BrowseDirection.Forward,
        ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
        IncludeSubtypes=True,
        ResultMask=0x3F,
    )


async def browse(client: Client, node_id: ua.NodeId, max_refs: int) -> ua.BrowseResult:
    params = ua.BrowseParameters(NodesToBrowse=[desc(node_id)], RequestedMaxReferencesPerNode=max_refs)
    return (await client.uaclient.browse(params))[0]


async def browse_next(client: Client, point: bytes, release: bool = False) -> ua.BrowseResult:
    params = ua.BrowseNextParameters(ReleaseContinuationPoints=release, ContinuationPoints=[point])
    return (await client.uaclient.browse_next(params))[0]


async def test_paging_through_ten_thousand_children(client: Client, served: Served) -> None:
    result = await browse(client, served.big, 500)
    assert result.StatusCode.is_good() and len(result.References) == 500 and result.ContinuationPoint
    found, calls = list(result.References), 1
    point = result.ContinuationPoint
    while point:
        assert calls < 100
        nxt = await browse_next(client, point)
        nxt.StatusCode.check()
        found += nxt.References
        point, calls = nxt.ContinuationPoint, calls + 1
    assert calls == 20
    assert [r.NodeId for r in found] == [ua.NodeId(n, served.tag_ns) for n in served.names()]
    assert {r.NodeClass for r in found} == {ua.NodeClass.Variable}
    assert found[123].DisplayName.Text == "T00123" and found[123].BrowseName == ua.QualifiedName(
        "T00123", served.tag_ns
    )


async def test_no_limit_from_the_client_still_answers_in_server_pages(client: Client, served: Served) -> None:
    result = await browse(client, served.big, 0)
    assert result.StatusCode.is_good()
    assert len(result.References) == SERVER_MAX_REFS and result.ContinuationPoint
    released = await browse_next(client, result.ContinuationPoint, release=True)
    assert released.StatusCode.is_good() and released.References == []
    again = await browse_next(client, result.ContinuationPoint)
    assert again.StatusCode.value == SC.BadContinuationPointInvalid


async def test_asyncua_high_level_api_follows_continuation_points(client: Client, served: Served) -> None:
    children = await client.get_node(served.big).get_children()
    assert len(children) == TAGS
    assert {c.nodeid.Identifier for c in children} == set(served.names())


async def test_continuation_points_are_limited_per_session(client: Client, served: Served) -> None:
    points = [(await browse(client, served.big, 10)).ContinuationPoint for _ in range(6)]  # server allows 5
    assert (await browse_next(client, points[0])).StatusCode.value == SC.BadContinuationPointInvalid
    for point in points[1:]:
        assert (await browse_next(client, point, release=True)).StatusCode.is_good()
    many = ua.BrowseParameters(NodesToBrowse=[desc(served.big)] * 6, RequestedMaxReferencesPerNode=10)
    results = await client.uaclient.browse(many)
    assert [r.StatusCode.value for r in results].count(SC.BadNoContinuationPoints) == 1
    await client.uaclient.browse_next(
        ua.BrowseNextParameters(
            ReleaseContinuationPoints=True,
            ContinuationPoints=[r.ContinuationPoint for r in results if r.ContinuationPoint],
        )
    )


async def test_browse_next_with_nothing_is_a_service_fault(client: Client) -> None:
    with pytest.raises(ua.UaStatusCodeError) as err:
        await client.uaclient.browse_next(ua.BrowseNextParameters(ContinuationPoints=[]))
    assert err.value.code == SC.BadNothingToDo


async def test_tag_attributes_and_properties_encode_over_tcp(client: Client, served: Served) -> None:
    level = client.get_node(ua.NodeId("Small.Level", served.tag_ns))
    dv = await level.read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == SC.BadWaitingForInitialData and dv.Value.Value is None
    assert await level.read_data_type() == ua.NodeId(ua.ObjectIds.Float)
    assert await level.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
    assert (await level.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
    assert (await level.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value == 7
    assert (await level.read_description()).Text == "level"
    props = {(await p.read_browse_name()).Name: await p.read_value() for p in await level.get_properties()}
    assert props["EURange"] == ua.Range(Low=0.0, High=10.0)
    assert props["EngineeringUnits"].UnitId == 5067080  # UNECE MQH, m³/h
    path = await client.nodes.objects.get_child(
        [f"{served.bridge_ns}:WinCC", f"{served.tag_ns}:Small", f"{served.tag_ns}:Level"]
    )
    assert path.nodeid == level.nodeid


@pytest.mark.interop
async def test_node_opcua_pages_through_the_folder(served: Served, node_client: Callable[..., list[Any]]) -> None:
    big = f"ns={served.folder_ns};s=Big"
    spec = {
        "endpoint": served.endpoint,
        "steps": [{"op": "browse", "nodeId": big, "maxRefs": 700}, {"op": "browse", "nodeId": big, "maxRefs": 0}],
    }
    started = time.monotonic()
    paged, unlimited = node_client(spec)
    # node-opcua browses every forward reference (no ReferenceTypeId): the folder's HasTypeDefinition comes too
    total = TAGS + 1
    assert paged["status"] == "Good" and paged["calls"] == math.ceil(total / 700)
    assert [r["nodeId"] for r in paged["refs"]] == ["ns=0;i=61"] + [f"ns={served.tag_ns};s={n}" for n in served.names()]
    assert unlimited["status"] == "Good" and unlimited["calls"] == math.ceil(total / SERVER_MAX_REFS)
    assert [r["nodeId"] for r in unlimited["refs"]] == [r["nodeId"] for r in paged["refs"]]
    assert time.monotonic() - started < 120  # bounded, not a performance claim


async def test_server_process_is_still_alive(served: Served) -> None:
    assert wait_until_sync(lambda: served.proc.poll() is None, timeout=1)
