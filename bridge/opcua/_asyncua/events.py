"""Touchpoint 13: Alarms & Conditions events to monitored items."""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemData, MonitoredItemService

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

# ---- 13. Alarms & Conditions: events to monitored items --------------------------------------------------------------
# Why: asyncua sends an event only to items monitoring exactly its `emitting_node`, evaluates OfType as equality (no
# subtypes), and its ConditionRefresh replays to every item of a subscription. The bridge's condition events travel
# a notifier chain and answer select/where clauses with their own evaluator (bridge/opcua/alarms/delivery.py), so
# it reads a subscription's event items itself and queues each EventFieldList the way asyncua's trigger path does.
# Read against asyncua 2.1.0: MonitoredItemService._monitored_events (notifier NodeId -> item ids) and
# ._monitored_items (id -> MonitoredItemData: filter, client_handle, queue_size, mode);
# InternalSubscription.enqueue_event(mid, eventdata, maxsize) and .session_id.


def event_items_of(subscription: Any) -> tuple[dict[ua.NodeId, list[int]], dict[int, Any]]:
    """(notifier NodeId -> monitored item ids, item id -> MonitoredItemData) of one InternalSubscription."""
    srv = subscription.monitored_item_srv
    return srv._monitored_events, srv._monitored_items


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint(
        "13 alarms & conditions", InternalSubscription, "enqueue_event", ("self", "mid", "eventdata", "maxsize")
    ),
    *(
        InstanceAttribute("13 alarms & conditions", MonitoredItemService, name)
        for name in ("_monitored_items", "_monitored_events")
    ),
    *(
        InstanceAttribute("13 alarms & conditions", MonitoredItemData, name)
        for name in ("filter", "client_handle", "queue_size", "mode")
    ),
    InstanceAttribute("13 alarms & conditions", InternalSubscription, "session_id"),
]
