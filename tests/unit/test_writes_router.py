"""WriteRouter: every per-node StatusCode, against an in-memory WinCC and an in-process server (no client)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from asyncua import ua

from bridge.config import OpcUaConfig, Role
from bridge.opcua.model.address_space import property_node_id
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import OutOfRange, to_wincc
from bridge.opcua.security.users import BridgeUser
from bridge.opcua.services.writes import WriteRouter
from bridge.wincc.models import DataType, TagInfo, WriteError
from tests.fakes import FakeWinCC
from tests.unit.ua_rig import server_with_tags

S = ua.StatusCodes
VT = ua.VariantType
TAGS = [
    TagInfo("A.Setpoint", DataType.float, ("A",), "Setpoint", low=0, high=10, writable=True),
    TagInfo("A.Level", DataType.float, ("A",), "Level", writable=False),
    TagInfo("A.Count", DataType.int16, ("A",), "Count", writable=True),
    TagInfo("A.Valve", DataType.bool, ("A",), "Valve", writable=True),
    TagInfo("A.Locked", DataType.int32, ("A",), "Locked", writable=True),
    TagInfo("A.Free", DataType.double, ("A",), "Free", writable=True),  # no limits
]
RULES = {"limited": ["A.Valve"]}


@pytest.fixture
async def rig():
    server, directory = await server_with_tags(TAGS)
    wincc = FakeWinCC(TAGS)
    written: list[tuple[str, Any]] = []
    router = WriteRouter(
        server,
        directory,
        wincc,
        OpcUaConfig(write_rules=RULES),
        on_written=lambda n, v: written.append((n, v)),
        timeout_s=0.5,
    )
    return server, directory, wincc, router, written


def wv(directory: TagDirectory, name: str, value: Any, vt: ua.VariantType, **dv: Any) -> ua.WriteValue:
    return ua.WriteValue(
        NodeId=directory.node_id(name),
        AttributeId=ua.AttributeIds.Value,
        Value=ua.DataValue(ua.Variant(value, vt), **dv),
    )


def session(name: str = "op", role: Role | None = Role.operator) -> SimpleNamespace:
    """A session as the user manager builds it: role and the user's write rules."""
    patterns = tuple(RULES[name]) if name in RULES else None
    return SimpleNamespace(user=BridgeUser.named(name, role, patterns) if role else BridgeUser.anonymous(None))


async def test_mixed_request_gives_each_node_its_code(rig) -> None:
    server, d, wincc, router, written = rig
    wincc.refuse["A.Count"] = WriteError.out_of_range  # WinCC's own limit
    nodes = [
        wv(d, "A.Setpoint", 5.0, VT.Float),  # Good
        wv(d, "A.Level", 1.0, VT.Float),  # read-only
        ua.WriteValue(
            NodeId=ua.NodeId("nope", d.tag_ns),
            AttributeId=ua.AttributeIds.Value,
            Value=ua.DataValue(ua.Variant(1.0, VT.Float)),
        ),
        wv(d, "A.Setpoint", "x", VT.String),  # type
        wv(d, "A.Setpoint", 11.0, VT.Float),  # EURange
        wv(d, "A.Count", 3, VT.Int16),  # refused by WinCC
        wv(d, "A.Valve", True, VT.Boolean),  # Good
        wv(d, "A.Setpoint", 1.0, VT.Float, SourceTimestamp=datetime(2026, 1, 1, tzinfo=UTC)),
        ua.WriteValue(
            NodeId=d.node_id("A.Setpoint"),
            AttributeId=ua.AttributeIds.DisplayName,
            Value=ua.DataValue(ua.Variant(ua.LocalizedText("x"))),
        ),
        ua.WriteValue(
            NodeId=d.node_id("A.Setpoint"),
            AttributeId=ua.AttributeIds.Value,
            IndexRange="1",
            Value=ua.DataValue(ua.Variant(1.0, VT.Float)),
        ),
    ]
    codes = [c.value for c in await router.write(session(), ua.WriteParameters(NodesToWrite=nodes))]
    assert codes == [
        S.Good,
        S.BadNotWritable,
        S.BadNodeIdUnknown,
        S.BadTypeMismatch,
        S.BadOutOfRange,
        S.BadOutOfRange,
        S.Good,
        S.BadWriteNotSupported,
        S.BadNotWritable,
        S.BadIndexRangeInvalid,
    ]
    assert wincc.calls == [{"A.Setpoint": 5.0, "A.Count": 3, "A.Valve": True}]  # one call, only accepted nodes
    assert written == [("A.Setpoint", 5.0), ("A.Valve", True)]
    # the client write counter of /metrics (wincc_bridge_client_writes_total{result=...}): one count per node
    assert router.results == {
        "Good": 2,
        "BadNotWritable": 2,
        "BadNodeIdUnknown": 1,
        "BadTypeMismatch": 1,
        "BadOutOfRange": 2,
        "BadWriteNotSupported": 1,
        "BadIndexRangeInvalid": 1,
    }


async def test_roles_and_rules(rig) -> None:
    server, d, wincc, router, _ = rig
    params = ua.WriteParameters(NodesToWrite=[wv(d, "A.Setpoint", 1.0, VT.Float), wv(d, "A.Valve", True, VT.Boolean)])
    for s in (session("r", Role.reader), session("anon", None)):
        assert [c.value for c in await router.write(s, params)] == [S.BadUserAccessDenied] * 2
    assert [c.value for c in await router.write(session("limited"), params)] == [S.BadUserAccessDenied, S.Good]
    assert wincc.calls == [{"A.Valve": True}]


async def test_slow_wincc_times_out(rig) -> None:
    server, d, wincc, router, written = rig
    wincc.write_delay = 5
    (code,) = await router.write(session(), ua.WriteParameters(NodesToWrite=[wv(d, "A.Setpoint", 2.0, VT.Float)]))
    assert code.value == S.BadTimeout and written == []


async def test_conversion_rule_mismatch_or_out_of_range(rig) -> None:
    """Another type family: BadTypeMismatch; the right family but too big for the tag's type: BadOutOfRange."""
    server, d, wincc, router, _ = rig
    params = ua.WriteParameters(
        NodesToWrite=[
            wv(d, "A.Count", 5, VT.Int32),
            wv(d, "A.Count", 70000, VT.Int32),
            wv(d, "A.Count", 2**40, VT.Int64),
            wv(d, "A.Count", 2.5, VT.Double),
            wv(d, "A.Count", 4.0, VT.Double),
            wv(d, "A.Count", "4", VT.String),
        ]
    )
    assert [c.value for c in await router.write(session(), params)] == [
        S.Good,
        S.BadOutOfRange,
        S.BadOutOfRange,
        S.BadTypeMismatch,
        S.Good,
        S.BadTypeMismatch,
    ]
    assert [call["A.Count"] for call in wincc.calls] == [5, 4]


async def test_same_node_twice_is_written_in_order(rig) -> None:
    server, d, wincc, router, _ = rig
    params = ua.WriteParameters(NodesToWrite=[wv(d, "A.Setpoint", 1.0, VT.Float), wv(d, "A.Setpoint", 2.0, VT.Float)])
    assert [c.value for c in await router.write(session(), params)] == [S.Good, S.Good]
    assert wincc.calls == [{"A.Setpoint": 1.0}, {"A.Setpoint": 2.0}]


async def test_non_finite_floats_are_out_of_range(rig) -> None:
    server, d, wincc, router, _ = rig
    nan, inf = float("nan"), float("inf")
    params = ua.WriteParameters(
        NodesToWrite=[
            wv(d, "A.Setpoint", nan, VT.Float),
            wv(d, "A.Setpoint", inf, VT.Float),
            wv(d, "A.Setpoint", -inf, VT.Float),
            wv(d, "A.Free", nan, VT.Double),
            wv(d, "A.Free", inf, VT.Double),
            wv(d, "A.Free", -1e300, VT.Double),
        ]
    )
    codes = [c.value for c in await router.write(session(), params)]
    assert codes == [S.BadOutOfRange] * 5 + [S.Good]
    assert wincc.calls == [{"A.Free": -1e300}]  # no NaN/inf ever reaches WinCC (JSON would carry it as null)


def write_attr(node_id: ua.NodeId, attr: ua.AttributeIds, variant: ua.Variant, index_range: str | None = None):
    return ua.WriteValue(NodeId=node_id, AttributeId=attr, Value=ua.DataValue(variant), IndexRange=index_range)


async def test_admin_writes_to_other_nodes_are_checked_per_node(rig, caplog: pytest.LogCaptureFixture) -> None:
    server, d, wincc, router, _ = rig
    A = ua.AttributeIds
    objects = server.nodes.objects
    open_var = await objects.add_variable(ua.NodeId("Open", d.bridge_ns), "Open", 1.0)
    await open_var.set_writable()  # AccessLevel CurrentWrite
    renamable = await objects.add_object(ua.NodeId("Renamable", d.bridge_ns), "Renamable")
    await renamable.write_attribute(
        A.WriteMask, ua.DataValue(ua.Variant(1 << ua.WriteMask.DisplayName.value, VT.UInt32))
    )
    nodes = [
        write_attr(ua.NodeId(ua.ObjectIds.Server_NamespaceArray), A.Value, ua.Variant(["urn:x"], VT.String)),
        write_attr(
            property_node_id("A.Setpoint", "EURange", d.bridge_ns), A.Value, ua.Variant(ua.Range(Low=0, High=99))
        ),
        write_attr(d.folder_node_id(("A",)), A.DisplayName, ua.Variant(ua.LocalizedText("B"))),
        write_attr(open_var.nodeid, A.Value, ua.Variant(2.0, VT.Double)),  # Good
        write_attr(renamable.nodeid, A.DisplayName, ua.Variant(ua.LocalizedText("Renamed"))),  # Good
        write_attr(renamable.nodeid, A.Description, ua.Variant(ua.LocalizedText("no bit for this"))),
        write_attr(renamable.nodeid, A.Value, ua.Variant(1.0, VT.Double)),  # an Object has no Value
        write_attr(open_var.nodeid, A.Value, ua.Variant(3.0, VT.Double), index_range="0"),
        write_attr(open_var.nodeid, A.Value, ua.Variant("text", VT.String)),  # asyncua's own type check
    ]
    caplog.set_level(logging.INFO, logger="bridge.audit.write")
    admin = session("boss", Role.admin)
    codes = [c.value for c in await router.write(admin, ua.WriteParameters(NodesToWrite=nodes))]
    assert codes == [
        S.BadNotWritable,
        S.BadNotWritable,
        S.BadNotWritable,
        S.Good,
        S.Good,
        S.BadNotWritable,
        S.BadAttributeIdInvalid,
        S.BadWriteNotSupported,
        S.BadTypeMismatch,
    ]
    assert await open_var.read_value() == 2.0
    assert (await renamable.read_display_name()).Text == "Renamed"
    ns = await server.get_namespace_array()
    assert "urn:x" not in ns and len(ns) > 1
    assert wincc.calls == []
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.audit.write"]
    assert f"write user=boss node=ns={d.bridge_ns};s=Open attribute=Value old=1.0 new=2.0 result=Good" in lines
    assert any(
        line.startswith("write user=boss node=i=2255 attribute=Value old=['http://opcfoundation.org/UA/'")
        and line.endswith("new=['urn:x'] result=BadNotWritable")
        for line in lines
    )
    assert len(lines) == len(nodes)

    # the same request from an operator: node checks first, then the role
    codes = [c.value for c in await router.write(session(), ua.WriteParameters(NodesToWrite=nodes[:5]))]
    assert codes == [S.BadNotWritable] * 3 + [S.BadUserAccessDenied] * 2
    assert await open_var.read_value() == 2.0


@pytest.mark.parametrize(
    ("data_type", "value", "vt", "outcome"),
    [
        (DataType.int32, 2**40, VT.Int64, OutOfRange),  # right family, too big
        (DataType.uint16, -1, VT.Int32, OutOfRange),
        (DataType.int16, float("inf"), VT.Double, OutOfRange),
        (DataType.float, 1e40, VT.Double, OutOfRange),  # beyond float's +/-3.4e38
        (DataType.float, 0.1, VT.Double, 0.1),  # in range: accepted, WinCC rounds it to float
        (DataType.float, -3.0e38, VT.Double, -3.0e38),
        (DataType.int32, 7.0, VT.Double, 7),  # a whole-valued Double into an integer tag
        (DataType.double, 2**60, VT.Int64, 2.0**60),  # exact as a double
        (DataType.double, 2**53 + 1, VT.Int64, TypeError),  # an integer a Double cannot hold exactly
        (DataType.float, 2**24 + 1, VT.Int32, TypeError),
        (DataType.int32, 2.5, VT.Double, TypeError),  # another family: a fraction into an integer tag
        (DataType.float, "1.5", VT.String, TypeError),
        (DataType.bool, 1, VT.Int32, TypeError),
    ],
)
def test_write_conversion_rule(data_type: DataType, value: Any, vt: ua.VariantType, outcome: Any) -> None:
    """The README's rule: another type family is a mismatch, a value of the right family that does not fit is out
    of range, everything else converts."""
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            to_wincc(data_type, ua.Variant(value, vt))
    else:
        assert to_wincc(data_type, ua.Variant(value, vt)) == outcome
