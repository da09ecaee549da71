"""BridgeMonitoredItemService on a real asyncua address space (server side only), with a subscription stand-in that
records what would be published: deadbands against the last reported value, filter checks, O(1) delete, modify."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asyncua import Server, ua
from asyncua.ua.uaprotocol_auto import DataChangeFilter

from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.sync.monitored_items import BridgeMonitoredItemService
from bridge.wincc.models import DataType, TagInfo
from tests.helpers import OtherTask
from tests.unit.ua_rig import server_with_tags

S = ua.StatusCodes
TAGS = [
    TagInfo("P.Level", DataType.double, ("P",), "Level", unit="m", low=0, high=200),  # AnalogItem, EURange 0..200
    TagInfo("P.Count", DataType.int32, ("P",), "Count"),  # no EURange
    TagInfo("P.Text", DataType.string, ("P",), "Text"),
]


class RecordingSubscription:
    """What MonitoredItemService needs of an InternalSubscription, recording enqueued notifications."""

    def __init__(self) -> None:
        self.data = ua.CreateSubscriptionResult(SubscriptionId=1, RevisedPublishingInterval=100)
        self.max_queue_size = 100
        self.sent: list[tuple[int, ua.MonitoredItemNotification]] = []

    async def enqueue_datachange_event(self, mid: int, event: ua.MonitoredItemNotification, size: int) -> None:
        self.sent.append((mid, event))

    async def trigger_statuschange(self, code: ua.StatusCode) -> None:  # pragma: no cover - not used here
        raise AssertionError(code)


@pytest.fixture
async def rig() -> tuple[Server, TagDirectory, BridgeMonitoredItemService, RecordingSubscription]:
    server, directory = await server_with_tags(TAGS)
    sub = RecordingSubscription()
    return server, directory, BridgeMonitoredItemService(sub, server.iserver.aspace), sub


def request(node_id: ua.NodeId, flt: object = None, handle: int = 7) -> ua.MonitoredItemCreateRequest:
    """As asyncua decodes it from the wire: no filter is an empty ExtensionObject, not None."""
    parameters = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=100, QueueSize=1)
    if flt is not None:
        parameters.Filter = flt
    assert parameters.Filter is not None
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=parameters,
    )


def deadband(
    kind: ua.DeadbandType, value: float, trigger: ua.DataChangeTrigger = ua.DataChangeTrigger.StatusValue
) -> DataChangeFilter:
    """As the binary decoder makes it from a client's request: the generated class, not ua.DataChangeFilter."""
    return DataChangeFilter(Trigger=trigger, DeadbandType=kind, DeadbandValue=value)


async def publish(
    server: Server,
    node_id: ua.NodeId,
    value: object,
    vt: ua.VariantType,
    status: int = S.Good,
    ts: datetime | None = None,
) -> None:
    stamp = ts or datetime.now(UTC)
    await server.write_attribute_value(
        node_id,
        ua.DataValue(
            ua.Variant(value, vt), StatusCode=ua.StatusCode(status), SourceTimestamp=stamp, ServerTimestamp=stamp
        ),
    )


async def create(
    service: BridgeMonitoredItemService, req: ua.MonitoredItemCreateRequest
) -> ua.MonitoredItemCreateResult:
    (result,) = await service.create_monitored_items(
        ua.CreateMonitoredItemsParameters(SubscriptionId=1, ItemsToCreate=[req])
    )
    return result


async def test_percent_deadband_compares_with_the_last_reported_value(rig) -> None:
    server, directory, service, sub = rig
    level = directory.node_id("P.Level")
    await publish(server, level, 100.0, ua.VariantType.Double)
    result = await create(service, request(level, deadband(ua.DeadbandType.Percent, 1.0)))  # 1 % of 200 = 2 m
    assert result.StatusCode.is_good()
    values = [100.5, 101.0, 101.5, 102.5, 102.6, 100.0]
    for v in values:
        await publish(server, level, v, ua.VariantType.Double)
    reported = [e.Value.Value.Value for _, e in sub.sent]
    # the first (initial) value, then 102.5 (2.5 from 100: a slow drift adds up), then 100.0 (2.5 from 102.5)
    assert reported == [100.0, 102.5, 100.0]


async def test_a_deadband_never_hides_a_status_change(rig) -> None:
    server, directory, service, sub = rig
    level = directory.node_id("P.Level")
    await publish(server, level, 50.0, ua.VariantType.Double)
    await create(service, request(level, deadband(ua.DeadbandType.Absolute, 10.0)))
    await publish(server, level, 50.1, ua.VariantType.Double, status=S.UncertainLastUsableValue)
    await publish(server, level, 50.2, ua.VariantType.Double, status=S.UncertainLastUsableValue)
    assert [e.Value.StatusCode.value for _, e in sub.sent] == [S.Good, S.UncertainLastUsableValue]


async def test_triggers(rig) -> None:
    server, directory, service, sub = rig
    count = directory.node_id("P.Count")
    t0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
    await publish(server, count, 1, ua.VariantType.Int32, ts=t0)
    status_only = await create(
        service, request(count, deadband(ua.DeadbandType.None_, 0, ua.DataChangeTrigger.Status), 1)
    )
    with_ts = await create(
        service, request(count, deadband(ua.DeadbandType.None_, 0, ua.DataChangeTrigger.StatusValueTimestamp), 2)
    )
    plain = await create(service, request(count, None, 3))
    await publish(server, count, 1, ua.VariantType.Int32, ts=t0.replace(second=1))  # timestamp only
    await publish(server, count, 2, ua.VariantType.Int32, ts=t0.replace(second=1))  # value
    per_item: dict[int, int] = {}
    for mid, _ in sub.sent:
        per_item[mid] = per_item.get(mid, 0) + 1
    assert per_item == {status_only.MonitoredItemId: 1, with_ts.MonitoredItemId: 3, plain.MonitoredItemId: 2}


@pytest.mark.parametrize(
    ("name", "flt", "code"),
    [
        ("P.Count", deadband(ua.DeadbandType.Percent, 5.0), S.BadDeadbandFilterInvalid),  # no EURange
        ("P.Level", deadband(ua.DeadbandType.Percent, 150.0), S.BadDeadbandFilterInvalid),  # outside 0..100
        ("P.Level", deadband(ua.DeadbandType.Absolute, -1.0), S.BadDeadbandFilterInvalid),
        ("P.Text", deadband(ua.DeadbandType.Absolute, 1.0), S.BadFilterNotAllowed),  # not a number
        ("P.Level", ua.AggregateFilter(), S.BadMonitoredItemFilterUnsupported),
    ],
)
async def test_filters_that_cannot_apply_are_refused(rig, name: str, flt: object, code: int) -> None:
    server, directory, service, sub = rig
    result = await create(service, request(directory.node_id(name), flt))
    assert result.StatusCode.value == code
    assert service._monitored_items == {} and sub.sent == []  # nothing half-created


async def test_absolute_deadband_on_an_integer_tag_without_range_works(rig) -> None:
    server, directory, service, sub = rig
    count = directory.node_id("P.Count")
    await publish(server, count, 10, ua.VariantType.Int32)
    assert (await create(service, request(count, deadband(ua.DeadbandType.Absolute, 2)))).StatusCode.is_good()
    for v in (11, 12, 13, 9):
        await publish(server, count, v, ua.VariantType.Int32)
    assert [e.Value.Value.Value for _, e in sub.sent] == [10, 13, 9]


async def test_modify_finds_the_item_and_refuses_unknown_ids(rig) -> None:
    server, directory, service, sub = rig
    level = directory.node_id("P.Level")
    await publish(server, level, 0.0, ua.VariantType.Double)
    item = await create(service, request(level))
    modify = ua.ModifyMonitoredItemsParameters(
        SubscriptionId=1,
        ItemsToModify=[
            ua.MonitoredItemModifyRequest(
                MonitoredItemId=item.MonitoredItemId,
                RequestedParameters=ua.MonitoringParameters(
                    ClientHandle=99,
                    SamplingInterval=500,
                    QueueSize=5000,
                    Filter=deadband(ua.DeadbandType.Absolute, 5.0),
                ),
            ),
            ua.MonitoredItemModifyRequest(MonitoredItemId=424242, RequestedParameters=ua.MonitoringParameters()),
            ua.MonitoredItemModifyRequest(
                MonitoredItemId=item.MonitoredItemId,
                RequestedParameters=ua.MonitoringParameters(
                    ClientHandle=99, Filter=deadband(ua.DeadbandType.Percent, 101.0)
                ),
            ),
        ],
    )
    good, unknown, refused = service.modify_monitored_items(modify)
    assert good.StatusCode.is_good() and good.RevisedQueueSize == 100  # capped by the subscription
    assert unknown.StatusCode.value == S.BadMonitoredItemIdInvalid
    assert refused.StatusCode.value == S.BadDeadbandFilterInvalid
    await publish(server, level, 3.0, ua.VariantType.Double)  # inside the new 5 m deadband (and kept by the refusal)
    await publish(server, level, 6.0, ua.VariantType.Double)
    assert [(e.ClientHandle, e.Value.Value.Value) for _, e in sub.sent] == [(7, 0.0), (99, 6.0)]


async def test_delete_is_linear_and_releases_the_node_callbacks(rig) -> None:
    """asyncua scans its handle map per deleted item (quadratic over a subscription); this one must not. Counted by
    making the handle map refuse iteration: O(1) lookups only."""
    server, directory, service, sub = rig
    level = directory.node_id("P.Level")
    requests = [request(level, handle=i) for i in range(2000)]
    results = await service.create_monitored_items(
        ua.CreateMonitoredItemsParameters(SubscriptionId=1, ItemsToCreate=requests)
    )
    attr = server.iserver.aspace.get(level).attributes[ua.AttributeIds.Value]
    assert len(attr.datachange_callbacks) == 2000

    class NoScan(dict):
        def items(self):  # type: ignore[override]
            raise AssertionError("the handle map was scanned")

        __iter__ = items  # type: ignore[assignment]

    service._monitored_datachange = NoScan(service._monitored_datachange)
    codes = service.delete_monitored_items([r.MonitoredItemId for r in results] + [1])
    assert all(c.is_good() for c in codes[:-1]) and codes[-1].value == S.BadMonitoredItemIdInvalid
    assert len(attr.datachange_callbacks) == 0 and service._monitored_items == {}


async def test_a_big_create_request_lets_other_sessions_in_between() -> None:
    """1,200 items in one CreateMonitoredItems come back complete and in order, and the event loop serves other
    work while they are created (a big MES subscription must not stall an operator's UaExpert)."""
    from bridge.opcua.services.session import CREATE_CHUNK

    server, directory = await server_with_tags(TAGS)
    session = server.iserver.create_session("test", external=True)

    async def publish(result: object) -> None:
        pass

    sub = await session.create_subscription(
        ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=100,
            RequestedLifetimeCount=100,
            RequestedMaxKeepAliveCount=10,
            PublishingEnabled=True,
        ),
        publish,
    )
    names = [t.name for t in TAGS]
    requests = [request(directory.node_id(names[i % len(names)]), handle=i) for i in range(1200)]
    async with OtherTask() as other:  # another session's work, waiting for turns
        results = await session.create_monitored_items(
            ua.CreateMonitoredItemsParameters(SubscriptionId=sub.SubscriptionId, ItemsToCreate=requests)
        )
    assert len(results) == 1200 and all(r.StatusCode.is_good() for r in results)
    ids = [r.MonitoredItemId for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 1200  # in request order
    assert other.turns >= 1200 // CREATE_CHUNK  # the other session was served between the chunks
    service = server.iserver.subscription_service.subscriptions[sub.SubscriptionId].monitored_item_srv
    assert [service._monitored_items[i].client_handle for i in ids] == list(range(1200))
    empty = await session.create_monitored_items(
        ua.CreateMonitoredItemsParameters(SubscriptionId=sub.SubscriptionId, ItemsToCreate=[])
    )
    assert empty == []


async def test_an_ended_subscription_lets_go_of_its_items(rig) -> None:
    """The subscription and its service are a reference cycle a freeze may keep forever: when it ends, its items
    are unhooked from their nodes and the tables that held them are let go."""
    server, directory, service, sub = rig
    level = directory.node_id("P.Level")
    await publish(server, level, 100.0, ua.VariantType.Double)
    await create(service, request(level, deadband(ua.DeadbandType.Percent, 1.0)))
    tables = (service.items, service.datachange_items)
    assert all(tables)
    service.delete_all_monitored_items()
    assert not service.items and not service.datachange_items
    assert service.items is not tables[0] and service.datachange_items is not tables[1]  # new, small tables
    sent = len(sub.sent)
    await publish(server, level, 150.0, ua.VariantType.Double)
    assert len(sub.sent) == sent  # no callback left on the node


async def test_a_subscription_ending_with_many_items_lets_go_of_them_between_turns(rig) -> None:
    """A client leaving with a plant's worth of items: the subscription is empty at once, no value reaches it any
    more, and the node callbacks leave in slices between turns of the event loop (100,000 at once held it 0.4 s)."""
    from tests.helpers import next_turn, wait_until

    server, directory, service, sub = rig
    level, count = directory.node_id("P.Level"), directory.node_id("P.Count")
    await service.create_monitored_items(
        ua.CreateMonitoredItemsParameters(
            SubscriptionId=1, ItemsToCreate=[request(n, handle=i) for i in range(6_000) for n in (level, count)]
        )
    )
    aspace = server.iserver.aspace
    callbacks = [aspace.get(n).attributes[ua.AttributeIds.Value].datachange_callbacks for n in (level, count)]

    def left() -> int:
        return sum(map(len, callbacks))

    assert left() == 12_000
    sent = len(sub.sent)
    service.delete_all_monitored_items()
    assert not service.items and not service.datachange_items  # the subscription is empty at once
    assert left() == 12_000  # its callbacks leave afterwards, not in this call
    await publish(server, level, 42.0, ua.VariantType.Double)  # a change while they are still there
    assert len(sub.sent) == sent
    await next_turn()
    assert 0 < left() < 12_000  # one slice per turn of the loop
    await wait_until(lambda: left() == 0, what="every callback released")
