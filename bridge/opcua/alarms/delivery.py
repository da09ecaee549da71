"""Condition events to monitored items: the notifier chain, the item's own select and where clauses, one
subscription or one item for a ConditionRefresh (why the bridge does this itself: bridge/opcua/_asyncua/,
section 13)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from asyncua import Server, ua

from bridge.opcua._asyncua import event_items_of, subscriptions

__all__ = ["EventItem", "deliver_event", "event_items", "has_event_item", "subscription_of"]


class EventItem:
    """One event monitored item: where it listens and what it asked for."""

    __slots__ = ("filter", "item", "mid", "node", "subscription")

    def __init__(self, subscription: Any, mid: int, node: ua.NodeId, item: Any) -> None:
        self.subscription = subscription
        self.mid = mid
        self.node = node
        self.item = item
        self.filter: ua.EventFilter = item.filter

    async def enqueue(self, fields: list[ua.Variant], unbounded: bool = False) -> None:
        """Queue one event for this item; `unbounded` lifts the item's queue size (a ConditionRefresh burst,
        bounded by the number of retained conditions, must not overflow the client's queue)."""
        fl = ua.EventFieldList(ClientHandle=self.item.client_handle, EventFields=fields)
        await self.subscription.enqueue_event(self.mid, fl, 0 if unbounded else self.item.queue_size)


def subscription_of(server: Server, subscription_id: int) -> Any | None:
    return subscriptions(server).get(subscription_id)


def event_items(
    server: Server, notifiers: Iterable[ua.NodeId] | None, subscription_id: int | None = None, mid: int | None = None
) -> list[EventItem]:
    """Event items on any of `notifiers` (None: on any node), of one subscription and/or one item if given.
    Disabled items and items whose filter is not an EventFilter are left out."""
    subs = subscriptions(server)
    chosen = (
        [subs[subscription_id]]
        if subscription_id is not None and subscription_id in subs
        else ([] if subscription_id is not None else list(subs.values()))
    )
    wanted = list(notifiers) if notifiers is not None else None
    out: list[EventItem] = []
    for sub in chosen:
        by_node, items = event_items_of(sub)
        for node in wanted if wanted is not None else list(by_node):
            for item_id in by_node.get(node, ()):
                if mid is not None and item_id != mid:
                    continue
                item = items.get(item_id)
                if item is None or item.mode == ua.MonitoringMode.Disabled:
                    continue
                if isinstance(item.filter, ua.EventFilter):
                    out.append(EventItem(sub, item_id, node, item))
    return out


def has_event_item(server: Server, subscription_id: int, mid: int) -> bool:
    sub = subscriptions(server).get(subscription_id)
    if sub is None:
        return False
    item = event_items_of(sub)[1].get(mid)
    return item is not None and isinstance(item.filter, ua.EventFilter)


async def deliver_event(
    items: Sequence[EventItem],
    select: Callable[..., list[ua.Variant]],
    matches: Callable[..., bool],
    record: Any,
    unbounded: bool = False,
) -> int:
    """Queue `record` for every item whose where clause it passes; return how many items got it."""
    sent = 0
    for item in items:
        flt = item.filter
        if matches(record, flt.WhereClause):
            await item.enqueue(select(record, flt.SelectClauses), unbounded)
            sent += 1
    return sent
