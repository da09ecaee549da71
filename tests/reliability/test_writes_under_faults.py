"""Writes and acknowledges while WinCC is in trouble: nothing lost, nothing duplicated, nothing invented.

Over OPC UA (asyncua clients over TCP, bridge and simulator in their own processes), both dialects:
- a write during an outage answers Bad and is never replayed once WinCC is back;
- a write whose REST call times out answers BadTimeout, before the client's own TimeoutHint runs out, and does not
  hold up the writing client's other requests (attack finding 6: its keep-alive read waited behind the write);
- 1,000 concurrent writes from 10 sessions while faults come and go: the simulator's write log is exactly the set of
  writes answered Good. The faults of that run all have a definite outcome (the request is refused before WinCC
  applies anything, or WinCC refuses the item). A REST call cut off mid-answer or timed out has an unknown outcome
  (WinCC may have applied it): such writes answer BadCommunicationError / BadTimeout, never Good, and the separate
  test for them checks Good <= log <= Good + those, with no duplicate.
Acknowledges at the REST-client level (dp, the dialect with an acknowledge call): refused during an outage, never
replayed, applied exactly once when repeated by the operator.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import httpx
import pytest
from asyncua import Client, ua

from bridge.config import WinCCConfig
from bridge.simulator import Simulator, SimulatorOptions
from bridge.wincc.dp import DpClient
from bridge.wincc.errors import WinCCError
from tests.helpers import wait_until, wait_until_sync
from tests.integration.conftest import bridge_stack  # noqa: F401  (the fixture)
from tests.reliability.wincc_rig import (
    READ_TIMEOUT_S,
    SLACK_S,
    S,
    clear_faults,
    connect,
    node_id,
    read_key,
    requests_served,
    set_fault,
    stack_per_dialect,
    subscribe,
    tag_name,
)

DIALECTS = ["dp", "restservice"]
W = [f"System1.Rel.W{i}" for i in range(10)]
A, B = "System1.Rel.A", "System1.Rel.B"


@pytest.fixture(scope="module")
def stacks(bridge_stack):  # noqa: F811
    return stack_per_dialect(bridge_stack)


def _write(nid: ua.NodeId, value: int) -> ua.WriteParameters:
    return ua.WriteParameters(
        NodesToWrite=[
            ua.WriteValue(
                NodeId=nid,
                AttributeId=ua.AttributeIds.Value,
                Value=ua.DataValue(ua.Variant(value, ua.VariantType.Int32)),
            )
        ]
    )


async def _write_one(client: Client, nid: ua.NodeId, value: int) -> int:
    (result,) = await client.uaclient.write(_write(nid, value))
    return result.value


def _log(stack) -> list[tuple[str, Any]]:
    return [(w["name"], w["value"]) for w in stack.sim_stats()["writes"]]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_write_during_outage_answers_bad_and_is_never_replayed(stacks, dialect):
    stack = stacks(dialect)
    client = await connect(stack)
    try:
        watch, _ = await subscribe(client, stack, [A, B])
        nid = await node_id(client, stack, W[0])
        stack.sim_control("/_sim/stats/reset", {})
        set_fault(stack, {"mode": "down"})
        try:
            assert await _write_one(client, nid, 4711) == S.BadCommunicationError
        finally:
            clear_faults(stack)
        await watch.good(tag_name(stack, A))
        served = requests_served(stack, read_key(stack))
        wait_until_sync(lambda: requests_served(stack, read_key(stack)) >= served + 5, timeout=10)
        assert _log(stack) == []  # WinCC never saw it, not even after it came back
        dv = await client.get_node(nid).read_data_value()
        assert dv.Value.Value == 7
        # the operator repeats it: applied once
        assert await _write_one(client, nid, 4711) == S.Good
        assert _log(stack) == [(tag_name(stack, W[0]), 4711)]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_slow_wincc_write_times_out_without_holding_up_the_session(stacks, dialect):
    """Finding 6: WinCC 15 s late. Subscribed values go Bad within a poll plus the read timeout; a write answers
    BadTimeout (here at wincc.timeouts.write_s); the same session's reads are answered while the write waits; the
    session survives."""
    stack = stacks(dialect)
    client = await connect(stack)
    try:
        watch, _ = await subscribe(client, stack, [A, B])
        nid = await node_id(client, stack, W[1])
        state = client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_State))
        t0 = time.monotonic()
        set_fault(stack, {"mode": "slow", "latency_ms": 15000})
        try:
            bad = await watch.status(tag_name(stack, A), S.BadCommunicationError, t0, timeout=30)
            assert bad.at - t0 <= 0.2 + READ_TIMEOUT_S + SLACK_S
            order: list[str] = []

            async def write() -> int:
                code = await _write_one(client, nid, 99)
                order.append("write")
                return code

            async def reads() -> None:
                for _ in range(3):  # a keep-alive read, several times while the write waits for WinCC
                    assert await state.read_value() == ua.ServerState.Running
                order.append("reads")

            started = time.monotonic()
            code, _ = await asyncio.gather(write(), reads())
            took = time.monotonic() - started
            assert code == S.BadTimeout
            assert took <= READ_TIMEOUT_S + SLACK_S, f"the write took {took:.2f} s"
            assert order == ["reads", "write"]
        finally:
            clear_faults(stack)
        await watch.good(tag_name(stack, A))
        assert await state.read_value() == ua.ServerState.Running  # same session, still there
    finally:
        await client.disconnect()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_write_honours_the_requests_timeout_hint(stacks, dialect):
    """A client that waits 1 s (TimeoutHint 1000 ms) gets BadTimeout before it gives up, though the bridge's own
    write timeout is longer."""
    stack = stacks(dialect)
    client = await connect(stack, timeout=1)
    try:
        nid = await node_id(client, stack, W[2])
        set_fault(stack, {"mode": "slow", "latency_ms": 5000})
        try:
            started = time.monotonic()
            assert await _write_one(client, nid, 5) == S.BadTimeout  # raises if the client timed out first
            assert time.monotonic() - started < 1.0
        finally:
            clear_faults(stack)
    finally:
        await client.disconnect()


# ---- 1,000 concurrent writes with faults coming and going -----------------------------------------------------
def _definite_faults(stack) -> list[dict[str, Any]]:
    """Faults whose outcome a write can know: refused before WinCC applies anything, or refused by WinCC."""
    w = [tag_name(stack, n) for n in W]
    rs = stack.dialect == "restservice"
    return [
        {"mode": "down"},
        {"mode": "status", "status": 500},
        {"mode": "status", "status": 503, "retry_after": 0},
        {"mode": "status", "status": 429, "retry_after": 0},
        {"mode": "error500"},
        {"mode": "forbidden"},
        {"mode": "unauthorized"},
        {"mode": "partial", "tags": w[:3]},  # item errors (restservice; dp's single PUT has none)
        {
            "mode": "write_errors",
            "tags": {
                w[3]: {"errorCode": 2, "errorDescription": "type mismatch"}
                if rs
                else {"status": 400, "error": "type mismatch: simulated"}
            },
        },
    ]


async def _toggle_faults(stack, faults: list[dict[str, Any]], stop: asyncio.Event) -> int:
    rng = random.Random(23)
    toggled = 0
    async with httpx.AsyncClient(base_url=stack.sim_base, timeout=10) as http:
        while not stop.is_set():
            (await http.post("/_sim/faults", json=rng.choice(faults))).raise_for_status()
            toggled += 1
            await asyncio.sleep(rng.uniform(0.03, 0.12))
            (await http.delete("/_sim/faults")).raise_for_status()
            await asyncio.sleep(rng.uniform(0.02, 0.08))
    return toggled


class Outcome:
    """Writes by answer, and what the simulator applied."""

    def __init__(self) -> None:
        self.answered: dict[int, set[tuple[str, int]]] = {}
        self.log: list[tuple[str, Any]] = []
        self.toggled = 0

    def add(self, name: str, value: int, code: int) -> None:
        self.answered.setdefault(code, set()).add((name, value))

    def of(self, *codes: int) -> set[tuple[str, int]]:
        return set().union(*(self.answered.get(c, set()) for c in codes))

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.answered.values())

    def check(self) -> None:
        """Nothing lost, nothing duplicated, nothing invented. A timeout's outcome is unknown (the write may have
        reached WinCC just before the bridge gave up): such a write may be in the log, no other non-Good one."""
        log = set(self.log)
        good = self.of(S.Good)
        assert len(self.log) == len(log), "a write reached WinCC twice"
        assert good <= log, f"lost (answered Good, not applied): {sorted(good - log)[:5]}"
        invented = log - good - self.of(*UNKNOWN)
        assert not invented, f"applied though answered with a definite Bad: {sorted(invented)[:5]}"

    def __str__(self) -> str:
        names = {ua.StatusCode(c).name: len(v) for c, v in self.answered.items()}
        return (
            f"{self.count} writes, answers {names}, {self.toggled} faults set, {len(set(self.log) - self.of(S.Good))}"
            " applied though not answered Good (outcome unknown)"
        )


# answers that say "not known whether WinCC applied it": the REST call timed out or was cut off mid-answer
UNKNOWN = (S.BadTimeout, S.BadCommunicationError)


async def _write_rounds(stack, faults, rounds: int, per_client: int) -> Outcome:
    """`rounds` x 10 sessions x `per_client` concurrent writes, each of a unique value to the session's own tag,
    while `faults` come and go."""
    # one after the other: a login costs a scrypt hash in the server's event loop (see the README's Reliability)
    clients = [await connect(stack) for _ in W]
    values = itertools.count(1_000_000)
    out = Outcome()
    try:
        nids = [await node_id(clients[0], stack, n) for n in W]
        names = [tag_name(stack, n) for n in W]
        # the simulator keeps the last 1,000 writes: at most that many are sent, so the log holds all of them
        assert rounds * per_client * len(W) <= 1000
        stack.sim_control("/_sim/stats/reset", {})
        for _ in range(rounds):
            stop = asyncio.Event()
            toggler = asyncio.create_task(_toggle_faults(stack, faults, stop))
            sent = [(k, next(values)) for k in range(len(W)) for _ in range(per_client)]
            codes = await asyncio.gather(*(_write_one(clients[k], nids[k], v) for k, v in sent))
            stop.set()
            out.toggled += await toggler
            clear_faults(stack)
            for (k, v), code in zip(sent, codes, strict=True):
                out.add(names[k], v, code)
        out.log = _log(stack)  # a write that timed out may still be applied later: then it is missing here, allowed
    finally:
        clear_faults(stack)
        for c in clients:
            await c.disconnect()
    return out


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_1000_concurrent_writes_under_faults_log_equals_good_answers(stacks, dialect):
    stack = stacks(dialect)
    out = await _write_rounds(stack, _definite_faults(stack), rounds=4, per_client=25)
    print(f"{dialect}: {out}")
    assert out.count == 1000
    out.check()
    # with these faults a write can only be Good or definitely refused, unless the machine is so loaded that the
    # REST call outlives wincc.timeouts.write_s (BadTimeout: outcome unknown, see Outcome.check)
    assert set(out.answered) - {S.BadTimeout} <= {
        S.Good,
        S.Bad,
        S.BadCommunicationError,
        S.BadUserAccessDenied,
        S.BadTypeMismatch,
        S.BadNotWritable,
    }
    assert len(out.of(S.Good)) > 100 and out.count - len(out.of(S.Good)) > 100  # both kinds happened
    # refused before WinCC applied anything, so never in the log, even though BadCommunicationError
    assert not (set(out.log) & (out.of(S.BadCommunicationError) - out.of(S.BadTimeout)))


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_writes_cut_off_mid_answer_are_never_good_and_never_doubled(stacks, dialect):
    stack = stacks(dialect)
    faults = [{"mode": "reset"}, {"mode": "down"}, {"mode": "status", "status": 503, "retry_after": 0}]
    out = await _write_rounds(stack, faults, rounds=1, per_client=20)
    print(f"{dialect}: {out}")
    out.check()
    assert set(out.answered) <= {S.Good, *UNKNOWN}


# ---- acknowledges at the REST-client level ----------------------------------------------------------------------
async def test_acknowledge_during_outage_fails_and_is_never_replayed():
    sim = Simulator(SimulatorOptions(port=0, dialect="dp"))
    await sim.start()
    config = WinCCConfig(
        url=sim.url,
        dialect="dp",
        timeouts={"connect_s": 1, "read_s": 1, "write_s": 1},
        retry={"attempts": 2, "backoff_s": 0.01, "max_backoff_s": 0.05},
    )
    client = DpClient(config)
    try:
        sim.plant.forced_alarms["1001"] = True
        sim.plant.set_alarm("1001", True)
        for spec in ({"mode": "down"}, {"mode": "status", "status": 503, "retry_after": 0}, {"mode": "reset"}):
            sim.faults.set(spec)
            with pytest.raises(WinCCError):
                await client.acknowledge("1001", "during a fault", "operator")
            sim.faults.clear()
            if spec["mode"] != "reset":  # refused before WinCC: nothing applied
                assert list(sim.stats.acknowledged) == []
        if not list(sim.stats.acknowledged):
            await client.acknowledge("1001", "once WinCC is back", "operator")
        await wait_until(lambda: len(sim.stats.acknowledged) == 1, timeout=5)
        alarms = await client.active_alarms()
        assert [a.acknowledged for a in alarms if a.id == "1001"] == [True]
        assert len(sim.stats.acknowledged) == 1  # never replayed
    finally:
        await client.aclose()
        await sim.stop()
