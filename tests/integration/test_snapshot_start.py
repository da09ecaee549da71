"""`export-nodeset` against the simulator writes a valid NodeSet2 of the model, and with WinCC down at start the
bridge serves the model of such a snapshot (the same NodeIds), values BadWaitingForInitialData /
BadCommunicationError, and recovers alone when WinCC comes back."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from asyncua import Client, ua

from tests.helpers import wait_until, wait_until_sync
from tests.integration.conftest import WINCC_PASSWORD, start_simulator

NS_URI = "urn:wincc-opcua-bridge:tags"
URIS = [NS_URI, NS_URI + "/folders", NS_URI + "/bridge"]  # local indexes 1, 2, 3 in the file
UA = "{http://opcfoundation.org/UA/2011/03/UANodeSet.xsd}"
UAX = "{http://opcfoundation.org/UA/2008/02/Types.xsd}"
ENV = {**os.environ, "WINCC_PASSWORD": WINCC_PASSWORD}


def _export(config: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "export-nodeset", "--config", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=60,
    )


def _file_node_ids(root: ET.Element) -> set[tuple[str, str]]:
    """(namespace URI, string identifier) of every node in a NodeSet2 written with local indexes 1..3."""
    out = set()
    for node in root:
        if node.tag in (UA + "UAObject", UA + "UAVariable"):
            ns, _, ident = node.get("NodeId", "").partition(";s=")
            out.add((URIS[int(ns.removeprefix("ns=")) - 1], ident))
    return out


def _check_nodeset(path: Path, tag_count: int) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == UA + "UANodeSet"
    assert [u.text for u in root.iter(UA + "Uri")] == URIS
    aliases = {a.get("Alias"): a.text for a in root.iter(UA + "Alias")}
    nodes = {n.get("NodeId"): n for n in root if n.get("NodeId")}
    tags = [i for i in nodes if i.startswith("ns=1;s=")]
    assert len(tags) == tag_count

    def refs(node: ET.Element) -> list[tuple[str | None, str | None, str | None]]:
        return [(r.get("ReferenceType"), r.get("IsForward", "true"), r.text) for r in node.iter(UA + "Reference")]

    level = nodes["ns=1;s=System1.Tank1.Level"]
    assert level.tag == UA + "UAVariable"
    assert aliases[level.get("DataType")] == f"i={ua.ObjectIds.Float}"
    assert (level.get("BrowseName"), level.findtext(UA + "DisplayName")) == ("1:Level", "Level")
    assert level.get("ParentNodeId") == "ns=2;s=System1/Tank1"
    assert level.get("Historizing") == "true" and level.get("AccessLevel") == "5"  # CurrentRead | HistoryRead
    assert ("HasTypeDefinition", "true", f"i={ua.ObjectIds.AnalogItemType}") in refs(level)
    assert ("Organizes", "false", "ns=2;s=System1/Tank1") in refs(level)
    assert ("HasProperty", "true", "ns=3;s=System1.Tank1.Level#EURange") in refs(level)
    assert ("HasProperty", "true", "ns=3;s=System1.Tank1.Level#EngineeringUnits") in refs(level)
    eu_range = nodes["ns=3;s=System1.Tank1.Level#EURange"]
    assert aliases[eu_range.get("DataType")] == f"i={ua.ObjectIds.Range}"
    assert eu_range.get("BrowseName") == "EURange"  # namespace 0
    assert (float(eu_range.findtext(f".//{UAX}Low")), float(eu_range.findtext(f".//{UAX}High"))) == (0.0, 10.0)
    units = nodes["ns=3;s=System1.Tank1.Level#EngineeringUnits"]
    assert aliases[units.get("DataType")] == f"i={ua.ObjectIds.EUInformation}"
    assert units.findtext(f".//{UAX}UnitId") == "5067858"  # UNECE MTR, metre
    assert units.findtext(f".//{UAX}DisplayName/{UAX}Text") == "m"
    # a plain tag: BaseDataVariableType, no properties; and its folder chain up to the WinCC root
    running = nodes["ns=1;s=System1.Pump1.Running"]
    assert aliases[running.get("DataType")] == f"i={ua.ObjectIds.Boolean}"
    assert [r for r in refs(running) if r[0] == "HasTypeDefinition"] == [
        ("HasTypeDefinition", "true", f"i={ua.ObjectIds.BaseDataVariableType}")
    ]
    assert not [r for r in refs(running) if r[0] == "HasProperty"]
    assert nodes["ns=2;s=System1/Pump1"].get("ParentNodeId") == "ns=2;s=System1"
    assert nodes["ns=2;s=System1"].get("ParentNodeId") == "ns=3;s=WinCC"
    assert ("Organizes", "false", f"i={ua.ObjectIds.ObjectsFolder}") in refs(nodes["ns=3;s=WinCC"])
    return root


async def _served_node_ids(client: Client) -> set[tuple[str, str]]:
    """(namespace URI, identifier) of every node below Objects/WinCC, the bridge's own status object aside."""
    uris = await client.get_namespace_array()
    bridge_ns = uris.index(NS_URI + "/bridge")
    root = client.get_node(ua.NodeId("WinCC", bridge_ns))
    found = {(NS_URI + "/bridge", "WinCC")}
    todo = [root]
    while todo:
        assert len(found) < 10_000
        for child in await todo.pop().get_children(refs=ua.ObjectIds.HierarchicalReferences):
            key = (uris[child.nodeid.NamespaceIndex], child.nodeid.Identifier)
            if key[1].startswith("BridgeStatus") or key in found:
                continue
            found.add(key)
            todo.append(child)
    return found


async def test_start_from_snapshot_while_wincc_is_down_then_recover(bridge_stack, tmp_path) -> None:
    stack = bridge_stack("dp")
    snapshot = stack.config["wincc"]["browse_snapshot"]
    wait_until_sync(lambda: os.path.exists(snapshot), timeout=10, what="browse snapshot written")
    tag_count = stack.sim_control("/_sim/health")["tags"]

    # export-nodeset, a CLI of its own against the same WinCC: a valid NodeSet2, the very file the bridge keeps
    exported = tmp_path / "nodesets" / "wincc.xml"
    done = _export(stack.config_path, exported, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"to {exported}" in done.stdout
    file_ids = _file_node_ids(_check_nodeset(exported, tag_count))
    assert exported.read_bytes() == Path(snapshot).read_bytes()
    client = Client(stack.url_for("reader"), timeout=10)
    await client.connect()
    try:
        live_ids = await _served_node_ids(client)
    finally:
        await client.disconnect()
    assert live_ids == file_ids

    assert stack.stop_bridge() == 0
    stack.sim.terminate()
    stack.sim.wait(10)
    # start from the exported file: WinCC is down, so it is all the bridge has
    config = yaml.safe_load(stack.config_path.read_text(encoding="utf-8"))
    config["wincc"]["browse_snapshot"] = str(exported)
    config_path = tmp_path / "from-export.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    log = tmp_path / "bridge2.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(config_path)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=ENV,
        cwd=tmp_path,
    )
    stack.bridge, stack.log_path = proc, log
    wait_until_sync(stack.ready, timeout=60, what="bridge ready from the snapshot")
    assert f"from the snapshot {exported}" in log.read_text()
    client = Client(stack.url_for("reader"), timeout=10)
    await client.connect()
    try:
        assert await _served_node_ids(client) == file_ids
        ns = await client.get_namespace_index(NS_URI)
        level = client.get_node(ua.NodeId("System1.Tank1.Level", ns))
        assert await level.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
        dv = await level.read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value in (ua.StatusCodes.BadWaitingForInitialData, ua.StatusCodes.BadCommunicationError)
        port = int(stack.sim_base.rsplit(":", 1)[1])
        stack.sim, _, _ = start_simulator(tmp_path, "dp", port=port)

        async def good() -> bool:
            return (await level.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()

        await wait_until(good, timeout=30, what="Good after WinCC came back")
    finally:
        await client.disconnect()
