"""Clients coming and going change which tags are polled, and so the batches the bridge reads from WinCC; the memory
of each old batch must not pile up (the soak's growth: every old batch kept its whole answer for 10-20 minutes).

A client subscribes a window of tags, waits until the bridge has polled the new plan, drops the subscription and
moves the window on, 50 times; the bridge's resident memory after the churn stays within a bound of where it was
after a warm-up (measured: +0.3-0.4 MiB; with old batches kept +12-14.5 MiB, growing with every change; without
the collection after monitored items are deleted (bridge/runtime/gc_policy.py) +4.0-6.3 MiB, the dropped
subscriptions' reference cycles waiting in the rarely examined old generation)."""

from __future__ import annotations

import pytest
from asyncua import ua

from tests.helpers import wait_until
from tests.integration.conftest import Stack, bridge_stack  # noqa: F401  (the fixture)
from tests.reliability.wincc_rig import NS_URI, connect, read_key, requests_served, rss_bytes

TAGS = 2000
WINDOW = 1000
STEP = 37  # not a multiple of the batch size: every change of window makes new batches
BATCH = 50
WARM_UP, CHURN = 8, 50
RSS_BOUND = 3 * 2**20


def _gen(i: int) -> str:
    return f"System1.Gen.G{i // 1000:03d}.Tag{i:06d}"


@pytest.fixture(scope="module")
def stack(bridge_stack) -> Stack:  # noqa: F811
    return bridge_stack(
        "dp",
        sim_args=("--tags", str(TAGS), "--change-rate", "0.01"),
        config={"sync": {"interval_ms": 200, "poll_groups_ms": [200], "idle_interval_ms": 1000, "batch_size": BATCH}},
    )


async def _churn(stack: Stack, client, ns: int, steps: range) -> None:
    for step in steps:
        start = step * STEP % TAGS
        names = [_gen((start + i) % TAGS) for i in range(WINDOW)]
        sub = await client.create_subscription(100, None)
        await sub.subscribe_data_change([client.get_node(ua.NodeId(n, ns)) for n in names], sampling_interval=200)
        served = requests_served(stack, read_key(stack))
        # a whole cycle of the new plan read: the window's 20 batches, and a few more
        await wait_until(
            lambda served=served: requests_served(stack, read_key(stack)) >= served + WINDOW // BATCH + 3,
            timeout=20,
            what="the new poll plan read",
        )
        await sub.delete()


async def test_changing_demand_leaves_no_batches_behind(stack: Stack) -> None:
    assert stack.bridge is not None
    client = await connect(stack)
    try:
        ns = await client.get_namespace_index(NS_URI)
        await _churn(stack, client, ns, range(WARM_UP))
        before = rss_bytes(stack.bridge.pid)
        await _churn(stack, client, ns, range(WARM_UP, WARM_UP + CHURN))
        after = rss_bytes(stack.bridge.pid)
    finally:
        await client.disconnect()
    grown = after - before
    print(f"MEASURED demand churn: RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB after {CHURN} changes")
    assert grown < RSS_BOUND, f"RSS grew {grown / 2**20:.1f} MiB over {CHURN} changes of demand"
