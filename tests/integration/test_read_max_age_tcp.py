"""Read's MaxAge over TCP: MaxAge 0 reads the asked tags from WinCC now (one batched REST read, counted by the
simulator), a large MaxAge answers from the cache without REST, and a slow WinCC never makes a Read slow: it is
answered from the cache, with the cache's status, once `sync.max_age_wait_ms` has passed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asyncua import Client, ua

from tests.helpers import wait_until

NS_URI = "urn:wincc-opcua-bridge:tags"
TAG = "System1.Tank1.LevelSetpoint"
OTHER = "System1.Tank1.Level"
WAIT_MS = 1000


@pytest.fixture(scope="module")
def stack(bridge_stack):
    # every tag idle (polled once a minute) and Reads do not speed polling up: only MaxAge reads reach WinCC
    return bridge_stack(
        "dp",
        config={
            "sync": {
                "interval_ms": 1000,
                "poll_groups_ms": [1000],
                "idle_interval_ms": 60_000,
                "read_recent_s": 0,
                "max_age_wait_ms": WAIT_MS,
            }
        },
    )


async def _read(client: Client, node_ids: ua.NodeId | list[ua.NodeId], max_age_ms: float) -> Any:
    """One Read with this MaxAge: the DataValue of one node, or the list for several."""
    params = ua.ReadParameters()
    params.MaxAge = max_age_ms
    ids = node_ids if isinstance(node_ids, list) else [node_ids]
    params.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=ua.AttributeIds.Value) for n in ids]
    results = await client.uaclient.read(params)
    return results if isinstance(node_ids, list) else results[0]


@pytest.fixture
async def client(stack):
    # a MaxAge Read holds this connection up to WAIT_MS (a connection's requests are answered in order): asyncua's
    # watchdog would call the server dead after 1 s without an answer to its probe
    c = Client(stack.url_for("reader"), timeout=15, watchdog_intervall=10)
    await c.connect()
    yield c
    await c.disconnect()


async def test_max_age_zero_reads_wincc_now_with_one_rest_read(stack, client) -> None:
    node = ua.NodeId(TAG, await client.get_namespace_index(NS_URI))
    first = await wait_until(lambda: _good(client, node), timeout=15, what="first poll")
    stack.sim_control("/_sim/stats/reset", {})
    new = first.Value.Value + 1.25
    stack.sim_control("/_sim/tags", {"set": {TAG: new}})

    cached = await _read(client, node, max_age_ms=600_000)  # ten minutes old is fine: the cache answers
    assert cached.Value.Value == first.Value.Value
    assert _tag_reads(stack) == 0

    fresh = await _read(client, node, max_age_ms=0)
    assert fresh.StatusCode.is_good() and fresh.Value.Value == new
    assert _tag_reads(stack) == 1  # one REST read of just the asked tag

    # two stale tags in one Read: one batched REST read of exactly those two
    stack.sim_control("/_sim/stats/reset", {})
    stack.sim_control("/_sim/tags", {"set": {TAG: new + 1}})
    both = await _read(client, [node, ua.NodeId(OTHER, node.NamespaceIndex)], max_age_ms=0)
    assert both[0].Value.Value == new + 1 and both[1].StatusCode.is_good()
    assert _tag_reads(stack) == 1 and stack.sim_stats()["read_batches"] == [2]


def _tag_reads(stack) -> int:
    """REST requests that read tag values (dp: one tag by GET, several by ReadMultiple)."""
    requests = stack.sim_stats()["requests"]
    return requests.get("GET /api/dp/{name}", 0) + requests.get("POST /WinCC/REST/Tags/ReadMultiple", 0)


async def _good(client: Client, node: ua.NodeId) -> ua.DataValue | None:
    dv = await _read(client, node, max_age_ms=600_000)
    return dv if dv.StatusCode.is_good() else None


async def test_reads_stay_fast_while_wincc_is_slow(stack, client) -> None:
    node = ua.NodeId(TAG, await client.get_namespace_index(NS_URI))
    stack.sim_control("/_sim/faults", {"mode": "slow", "latency_ms": 8000})
    try:
        before = await _read(client, node, max_age_ms=600_000)
        started = time.monotonic()
        answer = await _read(client, node, max_age_ms=0)
        elapsed = time.monotonic() - started
        # a bound, not a timing claim: the 8 s WinCC was not waited for, the cache answered after max_age_wait_ms
        assert elapsed < 8 * WAIT_MS / 1000 / 2, f"Read took {elapsed:.1f} s"
        assert answer.Value.Value == before.Value.Value and answer.StatusCode == before.StatusCode
        # further MaxAge-0 Reads join the read under way instead of queueing more behind the slow WinCC
        for _ in range(3):
            await _read(client, node, max_age_ms=0)
    finally:
        stack.sim_control("/_sim/faults", method="DELETE")
