"""WinCC faults through the simulator, each in both dialects, against the whole bridge over real HTTP and TCP.

For each fault: the OPC UA endpoint keeps serving, the affected tags (and only those) show the documented Bad status
within one poll cycle plus the read timeout (wincc_rig.BAD_WITHIN_S, with an allowance for a shared machine), and
the bridge recovers by itself once the fault is lifted. The dp stack logs in for a token (so token expiry and
re-login are part of it), the restservice stack uses basic auth. The leak test runs 100 fault cycles per dialect
and checks tasks, memory and sockets of the bridge process come back to where they were.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from asyncua import ua

from tests.helpers import wait_until
from tests.integration.conftest import bridge_stack  # noqa: F401  (the fixture)
from tests.reliability.wincc_rig import (
    BAD_WITHIN_S,
    Resources,
    S,
    Watch,
    add_rel_tags,
    clear_faults,
    code_of,
    connect,
    fault_config,
    metric,
    node_id,
    read_key,
    requests_served,
    set_fault,
    sim_args,
    stack_per_dialect,
    subscribe,
    tag_name,
)

A, B = "System1.Rel.A", "System1.Rel.B"
BCE = S.BadCommunicationError
DIALECTS = ["dp", "restservice"]


@pytest.fixture(scope="module")
def stacks(bridge_stack):  # noqa: F811
    return stack_per_dialect(bridge_stack)


# (id, fault spec, only tag A affected?, status the affected tags show, the fault lifts itself)
# The 500 burst is counted over every data request, and a fault stack sends about 5 browse requests at once each
# rebrowse (1 s), 2 alarm reads and 6 value reads a second, each tried twice. A burst of 6 can be used up by one
# rebrowse and never reach A and B (seen in CI); 30 outlasts a rebrowse, the alarm and idle reads and both tries of
# A and B's next cycle, and still lifts itself within about 2 s.
CASES: list[tuple[str, dict[str, Any], bool, int, bool]] = [
    ("down", {"mode": "down"}, False, BCE, False),
    ("slow_past_read_timeout", {"mode": "slow", "latency_ms": 4000}, False, BCE, False),
    ("401_unauthorized", {"mode": "unauthorized"}, False, BCE, False),
    ("403_forbidden", {"mode": "status", "status": 403}, False, BCE, False),
    ("500_burst", {"mode": "status", "status": 500, "count": 30}, False, BCE, True),
    ("500_until_lifted", {"mode": "error500"}, False, BCE, False),
    ("429_retry_after", {"mode": "status", "status": 429, "retry_after": 1}, False, BCE, False),
    ("503_retry_after", {"mode": "status", "status": 503, "retry_after": 1}, False, BCE, False),
    ("malformed_body", {"mode": "malformed"}, False, BCE, False),
    ("malformed_item", {"mode": "malformed_item", "tags": ["@A"]}, True, BCE, False),
    ("partial_batch", {"mode": "partial", "tags": ["@A"]}, True, S.Bad, False),
    ("reset_mid_body", {"mode": "reset"}, False, BCE, False),
]


def _spec(stack, spec: dict[str, Any]) -> dict[str, Any]:
    if "tags" in spec:
        return {**spec, "tags": [tag_name(stack, A)]}
    return spec


async def _endpoint_serves(client) -> None:
    state = await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)).read_value()
    assert state == ua.ServerState.Running


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("case", "spec", "only_a", "code", "lifts_itself"), CASES, ids=[c[0] for c in CASES])
async def test_fault_marks_affected_tags_and_recovers(stacks, dialect, case, spec, only_a, code, lifts_itself):
    stack = stacks(dialect)
    a, b = tag_name(stack, A), tag_name(stack, B)
    client = await connect(stack)
    try:
        watch, _ = await subscribe(client, stack, [A, B])
        t0 = time.monotonic()
        set_fault(stack, _spec(stack, spec))
        try:
            bad = await watch.status(a, code, t0, timeout=BAD_WITHIN_S + 10)
            assert bad.at - t0 <= BAD_WITHIN_S, (
                f"{case}: {a} went {ua.StatusCode(code).name} after {bad.at - t0:.2f} s (bound {BAD_WITHIN_S} s)"
            )
            assert bad.value == 7  # the last value is kept with the Bad status
            if only_a:
                # two more cycles answered with B in them: B never left Good
                served = requests_served(stack, read_key(stack))
                await wait_until(lambda: requests_served(stack, read_key(stack)) >= served + 2, timeout=5)
                assert [n.code for n in watch.since(b, t0)] in ([], [S.Good]), f"{case}: {b} was affected"
            else:
                other = await watch.status(b, code, t0, timeout=BAD_WITHIN_S + 10)
                assert other.at - t0 <= BAD_WITHIN_S
            await _endpoint_serves(client)
        finally:
            if not lifts_itself:
                clear_faults(stack)
        await watch.good(a)
        await watch.good(b)
        await _endpoint_serves(client)
    finally:
        clear_faults(stack)
        await client.disconnect()


async def test_token_expiry_mid_run_relogs_in_without_a_bad_value(stacks):
    """dp with token auth: WinCC drops every session (401 on the next request); the bridge logs in again and
    repeats the request, so no tag ever shows Bad."""
    stack = stacks("dp")
    client = await connect(stack)
    try:
        watch, _ = await subscribe(client, stack, [A, B])
        logins = requests_served(stack, "POST /api/auth/login")
        t0 = time.monotonic()
        set_fault(stack, {"mode": "expire_sessions"})
        await wait_until(lambda: requests_served(stack, "POST /api/auth/login") > logins, timeout=5, what="a new login")
        served = requests_served(stack, read_key(stack))
        await wait_until(lambda: requests_served(stack, read_key(stack)) >= served + 3, timeout=5)
        for name in (A, B):
            assert [n.code for n in watch.since(name, t0)] in ([], [S.Good]), watch.since(name, t0)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_restart_with_tags_added_and_removed(stacks, dialect):
    stack = stacks(dialect)
    a = tag_name(stack, A)
    new = f"System1.Rel.New{dialect.title()}"
    client = await connect(stack)
    try:
        watch, _ = await subscribe(client, stack, [A])
        t0 = time.monotonic()
        stack.sim_control(
            "/_sim/restart",
            {"add": [{"name": new, "type": "int32", "value": 11}], "remove": ["System1.Rel.Gone"], "down_s": 1},
        )
        bad = await watch.status(a, BCE, t0, timeout=BAD_WITHIN_S + 10)
        assert bad.at - t0 <= BAD_WITHIN_S
        await watch.good(a)
        added = client.get_node(await node_id(client, stack, new))
        gone = client.get_node(await node_id(client, stack, "System1.Rel.Gone"))

        async def added_good():
            dv = await added.read_data_value(raise_on_bad_status=False)
            return dv.StatusCode.is_good() and dv.Value.Value == 11

        async def gone_unknown():
            dv = await gone.read_data_value(raise_on_bad_status=False)
            return code_of(dv) == S.BadNodeIdUnknown

        await wait_until(added_good, timeout=15, what="the added tag served Good after the re-browse")
        await wait_until(gone_unknown, timeout=15, what="the removed tag gone after the re-browse")
        await _endpoint_serves(client)
    finally:
        await client.disconnect()


@pytest.fixture(scope="module")
def late_stacks(bridge_stack):  # noqa: F811
    """Per dialect, a stack whose WinCC is down when the bridge starts, configured with sync.on_failure: uncertain
    (two tests share it, the start-up first)."""
    made: dict[str, Any] = {}

    def get(dialect: str):
        if dialect not in made:

            def down_after_setup(sim_base: str) -> None:
                add_rel_tags(sim_base)
                httpx.post(sim_base + "/_sim/faults", json={"mode": "down"}, timeout=10).raise_for_status()

            config = fault_config(dialect, on_failure="uncertain")
            made[dialect] = bridge_stack(
                dialect, config=config, sim_args=sim_args(dialect), sim_setup=down_after_setup, wait_ready=False
            )
        return made[dialect]

    return get


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_wincc_down_at_start(late_stacks, dialect):
    """The endpoint comes up while WinCC is dead, says so in BridgeStatus, and serves the tags once WinCC is up."""
    stack = late_stacks(dialect)
    client = await connect(stack)
    try:
        await _endpoint_serves(client)
        bridge_ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags/bridge")
        state = await client.get_node(ua.NodeId("BridgeStatus.State", bridge_ns)).read_value()
        assert state != "connected"
        assert metric(stack, "wincc_bridge_wincc_connected") == 0
        clear_faults(stack)
        node = client.get_node(await node_id(client, stack, A))

        async def served_good():
            dv = await node.read_data_value(raise_on_bad_status=False)
            return dv.StatusCode.is_good() and dv.Value.Value == 7

        await wait_until(served_good, timeout=20, what="tags served once WinCC is up")
    finally:
        await client.disconnect()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_on_failure_uncertain_keeps_the_last_value_as_uncertain(late_stacks, dialect):
    """sync.on_failure: uncertain - a failed poll shows the last value exactly, as UncertainLastUsableValue."""
    stack = late_stacks(dialect)
    clear_faults(stack)
    client = await connect(stack)
    try:

        async def node_served():  # (when run alone, the tags arrive with the first browse)
            return await client.get_node(await node_id(client, stack, A)).read_data_value(raise_on_bad_status=False)

        await wait_until(lambda: _is_good(node_served()), timeout=20, what="tags served")
        watch, _ = await subscribe(client, stack, [A, B])
        t0 = time.monotonic()
        set_fault(stack, {"mode": "down"})
        try:
            for name in (A, B):
                note = await watch.status(
                    tag_name(stack, name), S.UncertainLastUsableValue, t0, timeout=BAD_WITHIN_S + 10
                )
                assert note.at - t0 <= BAD_WITHIN_S
                assert note.value == 7
            assert all(n.code in (S.Good, S.UncertainLastUsableValue) for n in watch.since(tag_name(stack, A), t0))
        finally:
            clear_faults(stack)
        await watch.good(tag_name(stack, A))
    finally:
        await client.disconnect()


async def _is_good(dv_coro) -> bool:
    return (await dv_coro).StatusCode.is_good()


# ---- 100 fault cycles: nothing left behind ----------------------------------------------------------------------
LEAK_FAULTS: list[dict[str, Any]] = [
    {"mode": "down"},
    {"mode": "status", "status": 500},
    {"mode": "reset"},
    {"mode": "malformed"},
    {"mode": "partial", "tags": ["@A"]},
    {"mode": "status", "status": 503, "retry_after": 0},
    {"mode": "unauthorized"},
    {"mode": "malformed_item", "tags": ["@A"]},
]
CYCLES = 100
# Bounds for "back where it started": a few tasks in flight at the moment of measuring (a poll, a publish), the
# allocator's and caches' noise, and keep-alive connections to WinCC that may be open or not
TASKS_BOUND, RSS_BOUND, SOCKETS_BOUND = 6, 12 * 2**20, 4


async def _cycle(stack, http: httpx.AsyncClient, watch: Watch, spec: dict[str, Any]) -> None:
    a = tag_name(stack, A)
    t0 = time.monotonic()
    (await http.post("/_sim/faults", json=_spec(stack, spec))).raise_for_status()
    try:
        await wait_until(
            lambda: any(n.code != S.Good for n in watch.since(a, t0)),
            timeout=BAD_WITHIN_S + 10,
            interval=0.02,
            what=f"{spec} seen",
        )
    finally:
        # taken before the fault is lifted: the recovery may reach this loop before the DELETE's own answer does
        t1 = time.monotonic()
        (await http.delete("/_sim/faults")).raise_for_status()
    await wait_until(
        lambda: any(n.code == S.Good for n in watch.since(a, t1)),
        timeout=10,
        interval=0.02,
        what=f"recovery from {spec}",
    )


async def _leak_run(stack) -> tuple[Resources, Resources]:
    client = await connect(stack)
    try:
        async with httpx.AsyncClient(base_url=stack.sim_base, timeout=10) as http:
            # two tags: one alone would be read with the single-tag call, which has no item errors in dp
            watch, _ = await subscribe(client, stack, [A, B])
            for spec in LEAK_FAULTS:  # warm-up: every code path once, so first-use allocations are in the baseline
                await _cycle(stack, http, watch, spec)
            before = Resources.of(stack)
            for i in range(CYCLES):
                await _cycle(stack, http, watch, LEAK_FAULTS[i % len(LEAK_FAULTS)])

            def settled() -> Resources | None:
                now = Resources.of(stack)
                ok = (
                    now.tasks <= before.tasks + TASKS_BOUND
                    and now.rss <= before.rss + RSS_BOUND
                    and now.sockets <= before.sockets + SOCKETS_BOUND
                )
                return now if ok else None

            try:
                after = await wait_until(settled, timeout=10, interval=0.2)
            except AssertionError:
                raise AssertionError(
                    f"{stack.dialect}: after {CYCLES} fault cycles {Resources.of(stack)}; before {before}"
                ) from None
            await _endpoint_serves(client)
            return before, after
    finally:
        await client.disconnect()


async def test_100_fault_cycles_leave_no_tasks_memory_or_sockets_behind(stacks):
    """Both dialects at once (they share nothing but the machine), 100 cycles each."""
    runs = await asyncio.gather(*(_leak_run(stacks(d)) for d in DIALECTS))
    for dialect, (before, after) in zip(DIALECTS, runs, strict=True):
        print(f"{dialect}: before {before}; after {CYCLES} fault cycles {after}")
