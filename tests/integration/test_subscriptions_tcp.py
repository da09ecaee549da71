"""Subscriptions over TCP against a bridge in its own process (simulator over HTTP, asyncua client here): the
revised sampling interval is the poll group that really polls the tag (counted at the simulator), deadbands
(Part 4 7.22.2, Part 8 7.2), and the GeneralModelChangeEvent of a re-browse.

One stack for the module, and one more for the model-change test (it changes the tag list). Their sync config is
the conftest default (poll groups 200/1000/5000 ms) with idle_interval_ms 2000 (not a poll group, so idle tags are
read in a batch of their own) and read_recent_s 0 (a Read does not speed a tag up, so only monitored items decide
the plan); wincc.rebrowse_s 1 for the model-change test.
No test depends on another having run before it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from asyncua import Client, ua

from tests.helpers import wait_until

NS_URI = "urn:wincc-opcua-bridge:tags"
IDLE_MS = 2000
SETPOINT = "System1.Tank1.LevelSetpoint"  # float, unit m, limits 0..10: AnalogItemType with EURange 0..10
VERB = ua.ModelChangeStructureVerbMask


def _start(bridge_stack):
    return bridge_stack(
        "dp", config={"sync": {"idle_interval_ms": IDLE_MS, "read_recent_s": 0}, "wincc": {"rebrowse_s": 1}}
    )


@pytest.fixture(scope="module")
def stack(bridge_stack):
    stack = _start(bridge_stack)
    sync = stack.config["sync"]
    # what the expectations below rest on
    assert sync["poll_groups_ms"] == [200, 1000, 5000] and sync["interval_ms"] == 200
    return stack


async def _client(stack, user: str = "operator") -> Client:
    client = Client(stack.url_for(user), timeout=10)
    await client.connect()
    return client


class _Values:
    """Data change notifications by client handle, in arrival order."""

    def __init__(self) -> None:
        self.by_handle: dict[int, list[ua.DataValue]] = {}

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        item = data.monitored_item
        self.by_handle.setdefault(item.ClientHandle, []).append(item.Value)

    def values(self, handle: int) -> list[Any]:
        return [dv.Value.Value for dv in self.by_handle.get(handle, [])]


class _Events:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


def _request(node_id: ua.NodeId, handle: int, sampling_ms: float, flt: Any = None) -> ua.MonitoredItemCreateRequest:
    params = ua.MonitoringParameters(
        ClientHandle=handle, SamplingInterval=sampling_ms, QueueSize=10, DiscardOldest=True
    )
    if flt is not None:
        params.Filter = flt
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=params,
    )


def _deadband(kind: ua.DeadbandType, value: float) -> ua.DataChangeFilter:
    return ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=kind, DeadbandValue=value)


async def test_revised_sampling_interval_is_the_poll_group_that_really_polls(stack) -> None:
    client = await _client(stack)
    try:
        ns = await client.get_namespace_index(NS_URI)
        sub = await client.create_subscription(500, _Values())
        fast, between, publishing, slowest = (
            ua.NodeId(f"System1.Counters.{n}", ns) for n in ("Int8Value", "UInt8Value", "UInt16Value", "UInt32Value")
        )
        # 0: as fast as offered; 300: between the groups 200 and 1000; -1: the subscription's publishing interval
        # (500 ms), rounded up to a group; 60 s: beyond the slowest group. asyncua alone answers 500 for each.
        params = ua.CreateMonitoredItemsParameters(
            SubscriptionId=sub.subscription_id,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ItemsToCreate=[
                _request(fast, 9001, 0),
                _request(between, 9002, 300),
                _request(publishing, 9003, -1),
                _request(slowest, 9004, 60_000),
            ],
        )
        results = await client.uaclient.create_monitored_items(params)
        assert [r.StatusCode.is_good() for r in results] == [True] * 4
        assert [r.RevisedSamplingInterval for r in results] == [200.0, 1000.0, 1000.0, 5000.0]
        # counting polls at 5 s would take too long: that tag goes back to idle
        (deleted,) = await client.uaclient.delete_monitored_items(
            ua.DeleteMonitoredItemsParameters(
                SubscriptionId=sub.subscription_id, MonitoredItemIds=[results[3].MonitoredItemId]
            )
        )
        assert deleted.is_good()

        # The simulator records the size of every ReadMultiple. With batch_size 500 each poll group is one read
        # per cycle, so the groups tell apart by size: 1 tag at 200 ms, 2 tags at 1000 ms, the rest idle. (The dp
        # client reads a single tag with GET /api/dp/<name>, so a one-tag group may show up there instead.)
        total = stack.sim_control("/_sim/health")["tags"]
        idle_size = total - 3
        assert idle_size > 2
        stack.sim_control("/_sim/stats/reset", {})
        started = time.monotonic()
        await wait_until(
            lambda: stack.sim_stats()["read_batches"].count(2) >= 4,
            timeout=20,
            interval=0.2,
            what="four reads of the 1000 ms group",
        )
        elapsed = time.monotonic() - started
        stats = stack.sim_stats()
        sizes = Counter(stats["read_batches"])
        sizes[1] += stats["requests"].get("GET /api/dp/{name}", 0)
        at_200, at_1000, idle = sizes[1], sizes[2], sizes[idle_size]
        detail = f"{dict(sizes)} in {elapsed:.2f} s"
        # at most one read of the plan before the deletion (idle group still one tag short) may slip in
        assert sum(sizes.values()) - at_200 - at_1000 - idle <= 1, detail
        # never faster than asked (4 reads of the 1000 ms group need >= 3 intervals); how close to the asked rate
        # each group comes is a performance figure, measured by bench/ (`python -m bench --only polling`)
        assert elapsed >= 3 * 0.95 and at_1000 <= elapsed / 1.0 + 1, detail
        assert at_200 <= elapsed / 0.2 + 2, detail
        # the faster group is read more often than the slower one
        assert at_200 > at_1000, detail
        # every other tag is read only at idle_interval_ms: REST load follows what clients use
        assert 1 <= idle <= elapsed / (IDLE_MS / 1000) + 1, detail
        await sub.delete()
    finally:
        await client.disconnect()


async def test_percent_deadband_reports_only_changes_beyond_the_band(stack) -> None:
    client = await _client(stack)
    try:
        ns = await client.get_namespace_index(NS_URI)
        node = ua.NodeId(SETPOINT, ns)
        got = _Values()
        sub = await client.create_subscription(50, got)
        # the same tag twice in one subscription: without a filter, and with a 10 % deadband of EURange 0..10
        # (1.0 m, compared with the last value *reported*, so small steps that add up past 1.0 are reported)
        plain, banded = await sub.create_monitored_items(
            [_request(node, 9101, 0), _request(node, 9102, 0, _deadband(ua.DeadbandType.Percent, 10.0))]
        )
        assert isinstance(plain, int) and isinstance(banded, int), [getattr(r, "name", r) for r in (plain, banded)]
        await wait_until(lambda: got.values(9101) and got.values(9102), timeout=10, what="initial values")
        start = got.values(9102)[0]
        base = 2.0 if abs(start - 2.0) > 1.5 else 7.0

        async def set_and_see(value: float, handle: int) -> None:
            stack.sim_control("/_sim/tags", {"set": {SETPOINT: value}})
            await wait_until(
                lambda: any(v == pytest.approx(value) for v in got.values(handle)),
                timeout=10,
                what=f"{value} on item {handle}",
            )

        await set_and_see(base, 9102)
        # three small steps, 0.9 in all: inside the band of the last reported value
        for step in (0.3, 0.6, 0.9):
            await set_and_see(base + step, 9101)
        await set_and_see(base + 1.5, 9102)
        # Both items are fed by the same samples in the same order: had the banded item reported any small step,
        # it would have arrived before base + 1.5
        assert got.values(9101)[-4:] == pytest.approx([base + 0.3, base + 0.6, base + 0.9, base + 1.5])
        assert got.values(9102) == pytest.approx([start, base, base + 1.5])
        await sub.delete()
    finally:
        await client.disconnect()


async def test_deadbands_the_node_cannot_take_are_refused_per_item(stack) -> None:
    client = await _client(stack)
    try:
        ns = await client.get_namespace_index(NS_URI)
        sub = await client.create_subscription(100, _Values())
        params = ua.CreateMonitoredItemsParameters(
            SubscriptionId=sub.subscription_id,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            ItemsToCreate=[
                # int32 without unit or limits: no EURange, so a percentage has nothing to be a percentage of
                _request(ua.NodeId("System1.Counters.Batch", ns), 9201, 0, _deadband(ua.DeadbandType.Percent, 5)),
                # a string has no distance to compare with a deadband
                _request(ua.NodeId("System1.Status.Text", ns), 9202, 0, _deadband(ua.DeadbandType.Absolute, 1)),
                # and the same request is fine where it fits
                _request(ua.NodeId(SETPOINT, ns), 9203, 0, _deadband(ua.DeadbandType.Percent, 5)),
            ],
        )
        results = await client.uaclient.create_monitored_items(params)
        assert [r.StatusCode.name for r in results] == ["BadDeadbandFilterInvalid", "BadFilterNotAllowed", "Good"]
        await sub.delete()
    finally:
        await client.disconnect()


def _changes(events: list[Any]) -> list[tuple[ua.NodeId, ua.NodeId, int]]:
    return [(c.Affected, c.AffectedType, c.Verb) for e in events for c in (e.Changes or [])]


async def test_rebrowse_emits_model_change_events_and_the_address_space_follows(bridge_stack) -> None:
    """Changes the simulator's tag list, so it has a stack of its own: the module's other tests see the tags as
    the simulator starts with them, whatever order they run in."""
    stack = _start(bridge_stack)
    client = await _client(stack, "reader")
    try:
        ns = await client.get_namespace_index(NS_URI)
        folder_ns = await client.get_namespace_index(NS_URI + "/folders")
        counters = client.get_node(ua.NodeId("System1/Counters", folder_ns))
        added, dropped = ua.NodeId("System1.Counters.Added", ns), ua.NodeId("System1.Counters.UInt16Value", ns)
        events = _Events()
        sub = await client.create_subscription(50, events)
        await sub.subscribe_events(client.nodes.server, ua.ObjectIds.GeneralModelChangeEventType)
        values = _Values()
        data_sub = await client.create_subscription(50, values)

        stack.sim_control("/_sim/tags", {"add": [{"name": "System1.Counters.Added", "type": "int32", "value": 5}]})
        await wait_until(
            lambda: (
                (added, ua.NodeId(ua.ObjectIds.BaseDataVariableType), VERB.NodeAdded.value) in _changes(events.events)
            ),
            timeout=15,
            what="NodeAdded for the new tag",
        )
        assert all(e.SourceNode == ua.NodeId(ua.ObjectIds.Server) for e in events.events)
        assert added in [c.nodeid for c in await counters.get_children()]
        assert (await client.get_node(added).read_display_name()).Text == "Added"
        # the sync engine polls it as soon as a client monitors it
        (item,) = await data_sub.create_monitored_items([_request(added, 9301, 0)])
        assert isinstance(item, int), item
        await wait_until(
            lambda: any(dv.StatusCode.is_good() and dv.Value.Value == 5 for dv in values.by_handle.get(9301, [])),
            timeout=10,
            what="its value",
        )

        seen = len(events.events)
        stack.sim_control("/_sim/tags", {"remove": ["System1.Counters.Added", "System1.Counters.UInt16Value"]})

        def deleted() -> bool:
            later = _changes(events.events[seen:])
            return {(n, v) for n, _, v in later} >= {(added, VERB.NodeDeleted.value), (dropped, VERB.NodeDeleted.value)}

        await wait_until(deleted, timeout=15, what="NodeDeleted for both removed tags")
        children = [c.nodeid for c in await counters.get_children()]
        assert added not in children and dropped not in children
        assert ua.NodeId("System1.Counters.UInt8Value", ns) in children  # the rest stays
        for node_id in (added, dropped):
            dv = await client.get_node(node_id).read_data_value(raise_on_bad_status=False)
            assert dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown, node_id
        # the removed tag's monitored item was told too
        await wait_until(
            lambda: any(
                dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown for dv in values.by_handle.get(9301, [])
            ),
            timeout=5,
            what="BadNodeIdUnknown on the removed tag's monitored item",
        )
        await data_sub.delete()
        await sub.delete()
    finally:
        await client.disconnect()
