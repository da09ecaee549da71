"""Demand: which tags are polled how fast, from monitored items and recent Reads. Pure bookkeeping, no server."""

from __future__ import annotations

from asyncua import ua

from bridge.config import SyncConfig
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.sync.demand import Demand
from bridge.wincc.models import DataType, TagInfo
from tests.fakes import FakeClock

NAMES = ["A.x", "A.y", "B.z"]


def directory() -> TagDirectory:
    d = TagDirectory(tag_ns=2, folder_ns=3, bridge_ns=4)
    d.add(TagInfo(n, DataType.double) for n in NAMES)
    return d


def config(**kw: object) -> SyncConfig:
    return SyncConfig.model_validate(
        {"interval_ms": 200, "poll_groups_ms": [200, 1000, 5000], "idle_interval_ms": 10_000, "read_recent_s": 30, **kw}
    )


def create(
    demand: Demand, sid: int, items: list[tuple[str, float, int]], attribute: int = ua.AttributeIds.Value
) -> list[ua.MonitoredItemCreateResult]:
    """items: (tag name, requested sampling interval, monitored item id)."""
    requests = [
        ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=ua.NodeId(name, 2), AttributeId=attribute),
            RequestedParameters=ua.MonitoringParameters(SamplingInterval=ms),
        )
        for name, ms, _ in items
    ]
    results = [ua.MonitoredItemCreateResult(MonitoredItemId=mid, RevisedSamplingInterval=ms) for _, ms, mid in items]
    demand.items_created(ua.CreateMonitoredItemsParameters(SubscriptionId=sid, ItemsToCreate=requests), results)
    return results


def test_requested_interval_is_rounded_up_to_a_poll_group_and_reported_back() -> None:
    demand = Demand(directory(), config())
    results = create(demand, 1, [("A.x", 300, 1), ("A.y", 1000, 2), ("B.z", 60_000, 3)])
    assert [r.RevisedSamplingInterval for r in results] == [1000.0, 1000.0, 5000.0]  # slowest group is the cap
    groups = demand.groups(NAMES)
    assert groups == {1000: ["A.x", "A.y"], 5000: ["B.z"]}


def test_zero_is_fastest_and_minus_one_is_the_publishing_interval() -> None:
    demand = Demand(directory(), config(), publishing_interval=lambda sid: {7: 900.0}.get(sid))
    results = create(demand, 7, [("A.x", 0, 1), ("A.y", -1, 2)])
    assert [r.RevisedSamplingInterval for r in results] == [200.0, 1000.0]
    # a subscription the server does not know (cannot happen in practice): -1 falls back to the fastest
    assert create(demand, 8, [("B.z", -1, 3)])[0].RevisedSamplingInterval == 200.0


def test_fastest_item_of_any_client_wins_and_others_stay_idle() -> None:
    demand = Demand(directory(), config())
    create(demand, 1, [("A.x", 5000, 1)])
    create(demand, 2, [("A.x", 200, 1)])  # item ids are per subscription: the same id in another one is another item
    assert demand.monitored_count == 2
    assert demand.groups(NAMES) == {200: ["A.x"], 10_000: ["A.y", "B.z"]}
    demand.items_deleted(2, [1])
    assert demand.groups(NAMES) == {5000: ["A.x"], 10_000: ["A.y", "B.z"]}


def test_only_good_value_items_of_tags_count() -> None:
    changes: list[int] = []
    demand = Demand(directory(), config(), on_change=lambda: changes.append(1))
    create(demand, 1, [("A.x", 200, 1)], attribute=ua.AttributeIds.DisplayName)  # not the Value
    server_status = ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(
            NodeId=ua.NodeId(ua.ObjectIds.Server_ServerStatus), AttributeId=ua.AttributeIds.Value
        ),
        RequestedParameters=ua.MonitoringParameters(SamplingInterval=200),
    )
    demand.items_created(
        ua.CreateMonitoredItemsParameters(SubscriptionId=1, ItemsToCreate=[server_status]),
        [ua.MonitoredItemCreateResult(MonitoredItemId=2)],
    )  # not a tag
    refused = ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=ua.NodeId("A.y", 2), AttributeId=ua.AttributeIds.Value),
        RequestedParameters=ua.MonitoringParameters(SamplingInterval=200),
    )
    demand.items_created(
        ua.CreateMonitoredItemsParameters(SubscriptionId=1, ItemsToCreate=[refused]),
        [
            ua.MonitoredItemCreateResult(
                StatusCode=ua.StatusCode(ua.StatusCodes.BadTooManyMonitoredItems), MonitoredItemId=3
            )
        ],
    )  # asyncua refused it
    assert demand.monitored_count == 0 and changes == []
    assert demand.groups(NAMES) == {10_000: NAMES}
    create(demand, 1, [("A.y", 200, 4)])
    assert demand.monitored_count == 1 and changes == [1]


def test_modify_changes_the_group() -> None:
    demand = Demand(directory(), config())
    create(demand, 1, [("A.x", 200, 1)])
    modify = ua.ModifyMonitoredItemsParameters(
        SubscriptionId=1,
        ItemsToModify=[
            ua.MonitoredItemModifyRequest(
                MonitoredItemId=1, RequestedParameters=ua.MonitoringParameters(SamplingInterval=4000)
            ),
            ua.MonitoredItemModifyRequest(
                MonitoredItemId=99, RequestedParameters=ua.MonitoringParameters(SamplingInterval=200)
            ),
        ],
    )
    results = [ua.MonitoredItemModifyResult(RevisedSamplingInterval=4000), ua.MonitoredItemModifyResult()]
    demand.items_modified(modify, results)
    assert results[0].RevisedSamplingInterval == 5000.0
    assert demand.groups(NAMES)[5000] == ["A.x"] and demand.monitored_count == 1


def test_subscriptions_that_end_release_their_tags() -> None:
    demand = Demand(directory(), config())
    create(demand, 1, [("A.x", 200, 1), ("A.y", 200, 2)])
    create(demand, 2, [("B.z", 1000, 1)])
    demand.prune(live_subscriptions=[2])  # 1 expired without a DeleteSubscriptions
    assert demand.groups(NAMES) == {10_000: ["A.x", "A.y"], 1000: ["B.z"]}
    demand.subscriptions_deleted([2])
    assert demand.monitored_count == 0 and demand.groups(NAMES) == {10_000: NAMES}


def test_a_read_keeps_a_tag_fast_for_a_while() -> None:
    clock = FakeClock()
    demand = Demand(directory(), config(), monotonic=clock.monotonic)
    demand.note_read(["B.z"])
    assert demand.groups(NAMES)[200] == ["B.z"]
    assert demand.next_expiry() == clock.now + 30
    clock.now += 29.9
    assert demand.groups(NAMES)[200] == ["B.z"]
    clock.now += 0.2  # 30 s after the Read: idle again
    assert demand.groups(NAMES) == {10_000: NAMES}
    assert demand.next_expiry() is None


def test_items_created_and_dropped_are_counted_for_the_garbage_collector_policy() -> None:
    demand = Demand(directory(), config())
    create(demand, 1, [("A.x", 200, 1), ("A.y", 200, 2)])
    create(demand, 2, [("B.z", 200, 3), ("A.x", 200, 4)])
    assert (demand.items_added, demand.items_dropped) == (4, 0)
    demand.items_deleted(1, [1, 99])  # 99 is unknown: not counted
    assert demand.items_dropped == 1
    demand.subscriptions_deleted([2, 42])  # both of 2's items; 42 is unknown
    assert demand.items_dropped == 3
    demand.prune(live_subscriptions=[])  # 1 ended without a Delete: its last item
    assert (demand.items_added, demand.items_dropped, demand.monitored_count) == (4, 4, 0)


def test_items_version_moves_with_monitored_items_only() -> None:
    """The engine tells a pushing WinCC the monitored names again only when this moved (100,000 names a time)."""
    demand = Demand(directory(), config())
    v0 = demand.items_version
    create(demand, 1, [("A.x", 200, 1)])
    v1 = demand.items_version
    assert v1 > v0
    demand.note_read(["B.z"])  # a Read makes a tag fast for a while: no monitored item changed
    assert demand.items_version == v1
    demand.items_deleted(1, [1])
    assert demand.items_version > v1
