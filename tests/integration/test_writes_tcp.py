"""Writes over real TCP, both dialects: a 20-node Write where every failing node fails for its own reason and
gets its own StatusCode, WinCC-side refusals mapped as docs/architecture.md says, the simulator receiving exactly the
accepted writes (restservice: in one REST call), audit lines in the bridge's log, and UserAccessLevel that
follows the write rules.

The bridge runs in a subprocess against the simulator over HTTP; the asyncua client runs here. WinCC-side
refusals come from the simulator's `write_errors` fault.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import wait_until

S = ua.StatusCodes
VT = ua.VariantType
A = ua.AttributeIds
TAG_NS = "urn:wincc-opcua-bridge:tags"
CURRENT_READ, CURRENT_WRITE = ua.AccessLevel.CurrentRead.mask, ua.AccessLevel.CurrentWrite.mask

# writable tags the first browse sees, so every WinCC-side refusal has a tag of its own
EXTRA = [
    {"name": f"System1.Extra.W{i}", "type": "double", "value": 0.0, "min": -1000, "max": 1000, "writable": True}
    for i in range(1, 9)
]
# the operator may not write Counters.Batch (nor Status.LastBatchStart); admin and unlisted users write all.
# Tank1.Level is listed so that restservice (no writable flag) sends it and WinCC refuses it as read-only.
WRITE_RULES = {"operator": ["*Setpoint*", "*Valve*", "*Extra*", "*Status*Text", "*Tank1?Level"]}

# WinCC-side refusal per tag: (dp fault, dp code, restservice fault, restservice code)
REFUSALS = {
    "System1.Extra.W3": (
        {"status": 400, "error": "type mismatch: simulated"},
        S.BadTypeMismatch,
        {"errorCode": 1, "errorDescription": "unknown variable (simulated)"},
        S.BadNodeIdUnknown,
    ),
    "System1.Extra.W4": (
        {"status": 400, "error": "out of range: simulated"},
        S.BadOutOfRange,
        {"errorCode": 2, "errorDescription": "type mismatch (simulated)"},
        S.BadTypeMismatch,
    ),
    "System1.Extra.W5": (
        {"status": 400, "error": "bad request: simulated"},
        S.BadInvalidArgument,
        {"errorCode": 3, "errorDescription": "out of range (simulated)"},
        S.BadOutOfRange,
    ),
    "System1.Extra.W6": (
        {"status": 403, "error": "no right (simulated)"},
        S.BadUserAccessDenied,
        {"errorCode": 4, "errorDescription": "not writable (simulated)"},
        S.BadNotWritable,
    ),
    "System1.Extra.W7": (
        {"status": 404, "error": "not found (simulated)"},
        S.BadNodeIdUnknown,
        {"errorCode": 7, "errorDescription": "no access right (simulated)"},
        S.BadUserAccessDenied,
    ),
    "System1.Extra.W8": (
        {"status": 500, "error": "internal (simulated)"},
        S.BadCommunicationError,
        {"errorCode": 99, "errorDescription": "something else (simulated)"},
        S.Bad,
    ),
}


def wincc_name(dialect: str, dp_name: str) -> str:
    """The simulator's name for a tag in a dialect (restservice: System1.Tank1.Level -> Tank1_Level)."""
    if dialect == "dp":
        return dp_name
    return "_".join(p.replace(" ", "") for p in dp_name.split(".")[1:])


@pytest.fixture(scope="module", params=["dp", "restservice"])
def stack(request: pytest.FixtureRequest, bridge_stack: Callable[..., Any]) -> Any:
    def add_tags(sim_base: str) -> None:
        httpx.post(sim_base + "/_sim/tags", json={"add": EXTRA}, timeout=10).raise_for_status()

    return bridge_stack(request.param, config={"opcua": {"write_rules": WRITE_RULES}}, sim_setup=add_tags)


@asynccontextmanager
async def connect(stack: Any, user: str) -> AsyncIterator[tuple[Client, Callable[[str], ua.NodeId]]]:
    client = Client(stack.url_for(user), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index(TAG_NS)
        yield client, lambda dp_name: ua.NodeId(wincc_name(stack.dialect, dp_name), ns)
    finally:
        await client.disconnect()


async def current_values(client: Client, node_ids: list[ua.NodeId]) -> list[Any]:
    """The tags' values once the bridge has polled them all (Good)."""

    async def all_good() -> list[Any] | None:
        dvs = await client.uaclient.read(
            ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=n, AttributeId=A.Value) for n in node_ids])
        )
        return [dv.Value.Value for dv in dvs] if all(dv.StatusCode.is_good() for dv in dvs) else None

    return await wait_until(all_good, timeout=20, interval=0.2, what="initial values of the tags")


def value(node_id: ua.NodeId, v: Any, vt: ua.VariantType, **dv: Any) -> ua.WriteValue:
    return ua.WriteValue(NodeId=node_id, AttributeId=A.Value, Value=ua.DataValue(ua.Variant(v, vt), **dv))


def audit_lines(stack: Any) -> list[str]:
    return [
        m.group(1)
        for line in stack.log_text().splitlines()
        if (m := re.search(r"INFO\s+bridge\.audit\.write: (.*)$", line))
    ]


async def test_twenty_nodes_in_one_write_each_get_their_code(stack: Any) -> None:
    d = stack.dialect
    good = {
        "System1.Tank1.LevelSetpoint": (4.5, VT.Float),
        "System1.Tank1.InletValve": (False, VT.Boolean),
        "System1.Extra.W1": (11.0, VT.Double),
    }
    async with connect(stack, "operator") as (client, nid):
        tag_ns, folders_ns = (
            await client.get_namespace_index(TAG_NS),
            await client.get_namespace_index(TAG_NS + "/folders"),
        )
        await current_values(client, [nid(n) for n in [*good, *REFUSALS]])
        nodes: list[tuple[ua.WriteValue, int]] = [
            *((value(nid(n), v, vt), S.Good) for n, (v, vt) in good.items()),
            (value(ua.NodeId("System1.NoSuchTag", tag_ns), 1.0, VT.Double), S.BadNodeIdUnknown),
            (value(ua.NodeId("System1.Tank1.Level", folders_ns), 1.0, VT.Float), S.BadNodeIdUnknown),
            (
                ua.WriteValue(
                    NodeId=nid("System1.Pump1.Running"),
                    AttributeId=A.DisplayName,
                    Value=ua.DataValue(ua.Variant(ua.LocalizedText("x"))),
                ),
                S.BadNotWritable,
            ),
            # dp: the bridge knows it is read-only; restservice has no writable flag, so WinCC says errorCode 4
            (value(nid("System1.Tank1.Level"), 1.0, VT.Float), S.BadNotWritable),
            (value(nid("System1.Pump1.SpeedSetpoint"), "fast", VT.String), S.BadTypeMismatch),
            (value(nid("System1.Reactor.TemperatureSetpoint"), 500.0, VT.Double), S.BadOutOfRange),
            (value(nid("System1.Extra.W2"), math.nan, VT.Double), S.BadOutOfRange),
            (
                ua.WriteValue(
                    NodeId=nid("System1.Pump1.Speed"),
                    AttributeId=A.Value,
                    IndexRange="0",
                    Value=ua.DataValue(ua.Variant(1.0, VT.Float)),
                ),
                S.BadIndexRangeInvalid,
            ),
            (
                value(
                    nid("System1.Reactor.Temperature"),
                    1.0,
                    VT.Double,
                    StatusCode=ua.StatusCode(S.UncertainLastUsableValue),
                ),
                S.BadWriteNotSupported,
            ),
            (
                value(nid("System1.Counters.Int8Value"), 1, VT.SByte, SourceTimestamp=datetime.now(UTC)),
                S.BadWriteNotSupported,
            ),
            (value(nid("System1.Counters.Batch"), 7, VT.Int32), S.BadUserAccessDenied),  # write rules
            *(
                (value(nid(n), 3.0, VT.Double), dp_code if d == "dp" else rs_code)
                for n, (_, dp_code, _, rs_code) in REFUSALS.items()
            ),
        ]
        assert len(nodes) == 20 and len({(w.NodeId, w.AttributeId) for w, _ in nodes}) == 20
        faults = {wincc_name(d, n): (dp if d == "dp" else rs) for n, (dp, _, rs, _) in REFUSALS.items()}
        stack.sim_control("/_sim/faults", {"mode": "write_errors", "tags": faults})
        stack.sim_control("/_sim/stats/reset", {})
        try:
            codes = await client.uaclient.write(ua.WriteParameters(NodesToWrite=[w for w, _ in nodes]))
            stats = stack.sim_stats()
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")

        assert [ua.StatusCode(c.value).name for c in codes] == [ua.StatusCode(e).name for _, e in nodes]
        # WinCC applied exactly the accepted writes, nothing else
        assert sorted((w["name"], w["value"]) for w in stats["writes"]) == sorted(
            (wincc_name(d, n), v) for n, (v, _) in good.items()
        )
        if d == "restservice":
            puts = {k: v for k, v in stats["requests"].items() if k.startswith("PUT")}
            assert puts == {"PUT /tagManagement/Values": 1}  # one batch PUT for the whole request
        else:
            # one PUT per node the bridge accepted (3 good + 6 refused by WinCC); none for the 11 it refused
            assert stats["requests"].get("PUT /api/dp/{name}") == 9
        # the address space shows the written values at once
        assert await current_values(client, [nid(n) for n in good]) == [v for v, _ in good.values()]

    lines = audit_lines(stack)
    w3 = wincc_name(d, "System1.Extra.W3")
    (refused,) = [line for line in lines if line.startswith(f"write user=operator tag={w3!r} old=0.0 new=3.0 ")]
    expected = (
        "BadTypeMismatch (PUT /api/dp/System1.Extra.W3: HTTP 400: type mismatch: simulated)"
        if d == "dp"
        else "BadNodeIdUnknown (errorCode 1: unknown variable (simulated))"
    )
    assert refused.endswith(f"result={expected}"), refused


async def test_audit_lines_for_a_good_and_a_failed_write(stack: Any) -> None:
    setpoint, valve = "System1.Pump1.SpeedSetpoint", "System1.Tank1.OutletValve"
    async with connect(stack, "operator") as (client, nid):
        old_setpoint, old_valve = await current_values(client, [nid(setpoint), nid(valve)])
        new_setpoint = 1234.5 if old_setpoint != 1234.5 else 1000.0
        codes = await client.uaclient.write(
            ua.WriteParameters(
                NodesToWrite=[value(nid(setpoint), new_setpoint, VT.Float), value(nid(valve), 1, VT.Int32)]
            )
        )
        assert [c.value for c in codes] == [S.Good, S.BadTypeMismatch]
    lines = audit_lines(stack)
    sp, va = wincc_name(stack.dialect, setpoint), wincc_name(stack.dialect, valve)
    assert f"write user=operator tag={sp!r} old={old_setpoint!r} new={new_setpoint!r} result=Good" in lines
    assert f"write user=operator tag={va!r} old={old_valve!r} new=1 result=BadTypeMismatch" in lines


async def test_whole_request_failure_at_wincc_fails_only_the_sent_nodes(stack: Any) -> None:
    d = stack.dialect
    w1, w2 = "System1.Extra.W1", "System1.Extra.W2"
    async with connect(stack, "operator") as (client, nid):
        await current_values(client, [nid(w1), nid(w2)])
        # dp: a 500 for one tag's PUT; restservice: {"status": 500} fails the whole batch PUT
        stack.sim_control("/_sim/faults", {"mode": "write_errors", "tags": {wincc_name(d, w2): {"status": 500}}})
        stack.sim_control("/_sim/stats/reset", {})
        try:
            codes = await client.uaclient.write(
                ua.WriteParameters(
                    NodesToWrite=[
                        value(nid(w1), 21.0, VT.Double),
                        value(nid(w2), 22.0, VT.Double),
                        value(nid("System1.Pump1.SpeedSetpoint"), 1e9, VT.Float),
                    ]
                )
            )  # refused by the bridge, not sent
            stats = stack.sim_stats()
        finally:
            stack.sim_control("/_sim/faults", method="DELETE")
    if d == "dp":
        assert [c.value for c in codes] == [S.Good, S.BadCommunicationError, S.BadOutOfRange]
        assert [(w["name"], w["value"]) for w in stats["writes"]] == [(w1, 21.0)]
    else:
        assert [c.value for c in codes] == [S.BadCommunicationError, S.BadCommunicationError, S.BadOutOfRange]
        assert stats["writes"] == []
        assert stats["requests"].get("PUT /tagManagement/Values") == 1


async def test_user_access_level_follows_the_write_rules(stack: Any) -> None:
    batch, valve = "System1.Counters.Batch", "System1.Tank1.InletValve"

    async def levels(user: str) -> list[int]:
        async with connect(stack, user) as (client, nid):
            dvs = await client.uaclient.read(
                ua.ReadParameters(
                    NodesToRead=[ua.ReadValueId(NodeId=nid(n), AttributeId=A.UserAccessLevel) for n in (batch, valve)]
                )
            )
            return [dv.Value.Value for dv in dvs]

    op_batch, op_valve = await levels("operator")
    assert op_batch == CURRENT_READ  # writable in WinCC, but not by this operator's write rules
    assert op_valve == CURRENT_READ | CURRENT_WRITE
    assert await levels("admin") == [CURRENT_READ | CURRENT_WRITE] * 2  # no rules for admin
    assert await levels("reader") == [CURRENT_READ] * 2


async def test_admin_writes_to_other_nodes_are_checked(stack: Any) -> None:
    """asyncua checks nothing for an Admin user; the bridge checks AccessLevel/WriteMask of every node itself."""
    level = "System1.Tank1.LevelSetpoint"
    async with connect(stack, "admin") as (client, nid):
        bridge_ns = await client.get_namespace_index(TAG_NS + "/bridge")
        folder = (await client.get_node(ua.NodeId("WinCC", bridge_ns)).get_children())[0]
        namespaces = await client.get_namespace_array()
        eu_range = ua.NodeId(f"{wincc_name(stack.dialect, level)}#EURange", bridge_ns)
        old_range = await client.get_node(eu_range).read_value()
        old_name = await folder.read_display_name()
        codes = await client.uaclient.write(
            ua.WriteParameters(
                NodesToWrite=[
                    value(ua.NodeId(ua.ObjectIds.Server_NamespaceArray), ["urn:evil"], VT.String),
                    ua.WriteValue(
                        NodeId=eu_range,
                        AttributeId=A.Value,
                        Value=ua.DataValue(ua.Variant(ua.Range(Low=-1e9, High=1e9))),
                    ),
                    ua.WriteValue(
                        NodeId=folder.nodeid,
                        AttributeId=A.DisplayName,
                        Value=ua.DataValue(ua.Variant(ua.LocalizedText("renamed"))),
                    ),
                ]
            )
        )
        assert [c.value for c in codes] == [S.BadNotWritable] * 3
        assert await client.get_namespace_array() == namespaces
        assert await client.get_node(eu_range).read_value() == old_range
        assert await folder.read_display_name() == old_name
    lines = audit_lines(stack)
    assert any(
        line.startswith("write user=admin node=i=2255 attribute=Value old=['http://opcfoundation.org/UA/'")
        and line.endswith("new=['urn:evil'] result=BadNotWritable")
        for line in lines
    )
    assert (
        f"write user=admin node={folder.nodeid.to_string()} attribute=DisplayName old={old_name!r} "
        f"new={ua.LocalizedText('renamed')!r} result=BadNotWritable" in lines
    )


def _client_writes(stack: Any) -> tuple[dict[str, float], set[str]]:
    """wincc_bridge_client_writes_total by result, and every metric name, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(stack.health_url + "/metrics", timeout=10).text
    by_result: dict[str, float] = {}
    names = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            if sample.name == "wincc_bridge_client_writes_total":
                by_result[sample.labels["result"]] = sample.value
    return by_result, names


async def test_conversions_and_the_client_write_counter(stack: Any) -> None:
    """The README's write-conversion rule over TCP (a value of the right type family that does not fit:
    BadOutOfRange; Double into Float in range: accepted), and /metrics counting these client writes by result,
    apart from the values polling stores (values_updated_total; values_written_total is gone)."""
    before, names = _client_writes(stack)
    assert "wincc_bridge_values_updated_total" in names and "wincc_bridge_values_written_total" not in names
    async with connect(stack, "admin") as (client, nid):  # admin: no write rules, so the types decide
        await current_values(client, [nid("System1.Pump1.SpeedSetpoint"), nid("System1.Counters.Batch")])
        cases = [
            (value(nid("System1.Counters.Batch"), 2**40, VT.Int64), S.BadOutOfRange),  # Int64 into Int32
            (value(nid("System1.Counters.Int16Value"), 70000, VT.Int32), S.BadOutOfRange),  # Int32 into Int16
            (value(nid("System1.Pump1.SpeedSetpoint"), 1e40, VT.Double), S.BadOutOfRange),  # Double into Float
            (value(nid("System1.Pump1.SpeedSetpoint"), 1500.5, VT.Double), S.Good),  # in range: accepted
            (value(nid("System1.Counters.Batch"), 2.5, VT.Double), S.BadTypeMismatch),  # a fraction: other family
        ]
        codes = await client.uaclient.write(ua.WriteParameters(NodesToWrite=[w for w, _ in cases]))
        assert [ua.StatusCode(c.value).name for c in codes] == [ua.StatusCode(e).name for _, e in cases]
    after, _ = _client_writes(stack)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: v for k, v in delta.items() if v} == {"BadOutOfRange": 3, "Good": 1, "BadTypeMismatch": 1}
