"""Small pure parts of issue 21: the bridge's NodeSet against BridgeStatus, what a reload may apply, the
diagnostics' request counters, the new config keys. The behaviour over TCP is in tests/integration/*_tcp.py."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from asyncua import ua

from bridge.config import BridgeConfig, ConfigError, OpcUaConfig, parse_config
from bridge.opcua.model import bridge_status
from bridge.opcua.security.passwords import hash_password
from bridge.opcua.security.user_manager import BridgeUserManager
from bridge.opcua.services.diagnostics import ServerCounters, SessionCounters, service_count_field
from bridge.runtime.reload import restart_needed

ROOT = Path(__file__).resolve().parents[2]
NS = {"u": "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"}
PW = "op-secret-91"  # = UNIT_PASSWORD in tests/integration/conftest.py
_TYPES = {
    ua.VariantType.Boolean: "Boolean",
    ua.VariantType.String: "String",
    ua.VariantType.DateTime: "DateTime",
    ua.VariantType.UInt32: "UInt32",
    ua.VariantType.Double: "Double",
}


def test_nodeset_defines_bridge_status_type_with_every_field() -> None:
    packaged = ROOT / "bridge" / "nodesets" / bridge_status.NODESET
    tree = ET.parse(packaged).getroot()
    assert [u.text for u in tree.find("u:NamespaceUris", NS)] == [bridge_status.TYPES_URI]
    (status_type,) = [t for t in tree.findall("u:UAObjectType", NS) if t.get("BrowseName") == "1:BridgeStatusType"]
    assert status_type.get("NodeId") == f"ns=1;i={bridge_status._STATUS_TYPE_ID}"
    variables = {
        v.get("BrowseName").split(":", 1)[1]: v.get("DataType")
        for v in tree.findall("u:UAVariable", NS)
        if v.get("ParentNodeId") == status_type.get("NodeId")
    }
    assert variables == {name: _TYPES[vt] for name, (vt, _) in bridge_status._FIELDS.items()}


def test_nodeset_is_at_the_top_level_and_in_the_package_data() -> None:
    top = ROOT / "nodesets" / bridge_status.NODESET
    assert top.resolve() == (ROOT / "bridge" / "nodesets" / bridge_status.NODESET).resolve()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert f"nodesets/{bridge_status.NODESET}" in project["tool"]["setuptools"]["package-data"]["bridge"]


def test_reload_names_what_needs_a_restart() -> None:
    running = parse_config("wincc: {url: 'http://a:1'}\n")
    new = parse_config(
        "wincc: {url: 'http://b:1', dialect: restservice}\n"
        "opcua:\n  endpoint: opc.tcp://0.0.0.0:4841/x\n  write_rules: {op: ['A.*']}\n  anonymous: read\n"
        "log: {level: debug}\n"
    )
    assert restart_needed(running, new) == ["opcua.endpoint", "wincc.dialect", "wincc.url"]
    assert restart_needed(running, running) == []


def test_user_manager_reload_takes_new_users_and_rules() -> None:
    manager = BridgeUserManager(OpcUaConfig())
    assert manager.get_user(None, "op", PW) is None
    manager.reload(
        OpcUaConfig(
            users=[{"name": "op", "password_hash": hash_password(PW), "role": "operator"}],
            write_rules={"op": ["Tank.*"]},
        )
    )
    user = manager.get_user(None, "op", PW)
    assert user is not None and user.write_patterns == ("Tank.*",)


def test_request_types_map_to_session_diagnostics_counters() -> None:
    O = ua.ObjectIds  # noqa: E741, N806
    assert service_count_field(ua.NodeId(O.ReadRequest_Encoding_DefaultBinary)) == "ReadCount"
    assert service_count_field(ua.NodeId(O.BrowseNextRequest_Encoding_DefaultBinary)) == "BrowseNextCount"
    assert (
        service_count_field(ua.NodeId(O.TranslateBrowsePathsToNodeIdsRequest_Encoding_DefaultBinary))
        == "TranslateBrowsePathsToNodeIdsCount"
    )
    assert service_count_field(ua.NodeId(O.CreateSessionRequest_Encoding_DefaultBinary)) is None
    counters = SessionCounters()
    counters.count("ReadCount", failed=False, unauthorized=False)
    counters.count("WriteCount", failed=True, unauthorized=True)
    assert counters.total == [2, 1] and counters.unauthorized == 1 and counters.services["WriteCount"] == [1, 1]
    assert ServerCounters().cumulated_sessions == 0


def test_new_config_keys_and_their_errors() -> None:
    config = BridgeConfig.model_validate({"wincc": {"url": "http://a:1"}})
    assert config.sync.max_age_wait_ms == 250 and config.log.level is None
    assert config.opcua.redundancy.mode == "none" and config.opcua.redundancy.partners == []
    for text, key in (
        ("sync: {max_age_wait_ms: -1}\n", "sync.max_age_wait_ms"),
        ("log: {level: loud}\n", "log.level"),
        ("opcua: {redundancy: {mode: lukewarm}}\n", "opcua.redundancy.mode"),
        ("opcua: {redundancy: {mode: hot}}\n", "opcua.redundancy"),
        ("opcua: {redundancy: {partners: ['urn:b']}}\n", "opcua.redundancy"),
        ("opcua: {application_uri: 'urn:a', redundancy: {mode: hot, partners: ['urn:a']}}\n", "opcua.redundancy"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config("wincc: {url: 'http://a:1'}\n" + text)
        assert err.value.key == key


class _FakeSync:
    """What ReadService asks of the sync engine for MaxAge: ages, and the waits it is given."""

    def __init__(self, age_s: float) -> None:
        self.age = age_s
        self.reads: list[tuple[list[str], float]] = []

    def age_s(self, name: str) -> float:
        return self.age

    async def read_now(self, names: list[str], wait_s: float) -> None:
        self.reads.append((list(names), wait_s))


@pytest.mark.parametrize(
    ("max_age_ms", "age_s", "hint_ms", "expected"),
    [
        (0, 0.0, 0, [(["A.Level"], 0.25)]),  # MaxAge 0: always WinCC, the configured wait
        (0, 0.0, 100, [(["A.Level"], 0.05)]),  # never past half the TimeoutHint
        (5000, 1.0, 0, []),  # the cache is young enough
        (500, 1.0, 0, [(["A.Level"], 0.25)]),  # older than MaxAge
    ],
)
async def test_read_max_age_asks_wincc_within_the_bounds(max_age_ms, age_s, hint_ms, expected) -> None:
    from bridge.opcua.model.tags import TagDirectory
    from bridge.opcua.services.reads import ReadService
    from bridge.opcua.services.session import RequestContext, request_context
    from bridge.wincc.models import DataType, TagInfo

    directory = TagDirectory(2, 3, 4)
    directory.add([TagInfo("A.Level", DataType.float, ("A",), "Level")])
    sync = _FakeSync(age_s)
    service = ReadService(None, directory, sync, max_age_wait_ms=250)  # type: ignore[arg-type]
    params = ua.ReadParameters(
        MaxAge=max_age_ms,
        NodesToRead=[
            ua.ReadValueId(NodeId=directory.node_id("A.Level"), AttributeId=ua.AttributeIds.Value),
            ua.ReadValueId(NodeId=directory.node_id("A.Level"), AttributeId=ua.AttributeIds.DisplayName),
        ],
    )
    token = request_context.set(RequestContext(secured=True, timeout_hint_ms=hint_ms))
    try:
        await service._refresh(params)  # noqa: SLF001 - the MaxAge decision, without a server
    finally:
        request_context.reset(token)
    assert sync.reads == expected
