"""Touchpoint 6: asyncua's monitored item service with its private steps as public hooks."""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemData, MonitoredItemService

# what the binary decoder makes of a client's filter; ua.DataChangeFilter is a hand-written subclass of it, which
# only in-process code ever builds, so an isinstance check against ua.DataChangeFilter misses every client's filter
from asyncua.ua.uaprotocol_auto import DataChangeFilter

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

__all__ = ["TOUCHPOINTS", "DataChangeFilter", "ItemServiceBase", "MonitoredItemData"]

# ---- 6. Monitored item service -------------------------------------------------------------------------------------
# Why: asyncua 2.1's service deletes in O(n) per item, compares deadbands with the previous sample, has no Percent
# deadband and keeps a dozen objects per item (see sync/monitored_items.py). The bridge's service replaces its
# create / modify / delete steps, which asyncua only offers as private methods; this base class turns them into
# public hooks and names the private state they work on. Read against asyncua 2.1.0: MonitoredItemService(isub,
# aspace) with _monitored_items, _monitored_events, _monitored_datachange, _monitored_item_counter,
# _revise_queue_size(requested), _create_data_change_monitored_item(params), _modify_monitored_item(params),
# _delete_monitored_items(mid); isub.data.RevisedPublishingInterval and isub.enqueue_datachange_event(mid, event,
# size).


class ItemServiceBase(MonitoredItemService):
    """asyncua's MonitoredItemService with its private create / modify / delete steps as public hooks."""

    # -- state asyncua keeps, under public names
    @property
    def items(self) -> dict[int, Any]:
        """Monitored item id -> its data (asyncua's MonitoredItemData, or the subclass's own object)."""
        items: dict[int, Any] = self._monitored_items
        return items

    @property
    def datachange_items(self) -> dict[int, int]:
        """Callback handle -> monitored item id, for data change items."""
        return self._monitored_datachange

    @property
    def event_items(self) -> dict[ua.NodeId, list[int]]:
        """Node -> its event monitored item ids."""
        return self._monitored_events

    def next_item_id(self) -> int:
        self._monitored_item_counter += 1
        return self._monitored_item_counter

    def revise_queue_size(self, requested: int) -> int:
        return self._revise_queue_size(requested)

    @property
    def revised_publishing_interval(self) -> float:
        interval: float = self.isub.data.RevisedPublishingInterval
        return interval

    async def enqueue(self, mid: int, event: ua.MonitoredItemNotification, queue_size: int) -> None:
        await self.isub.enqueue_datachange_event(mid, event, queue_size)

    # -- hooks: asyncua's behaviour unless overridden
    async def create_data_change_item(self, params: ua.MonitoredItemCreateRequest) -> ua.MonitoredItemCreateResult:
        return await super()._create_data_change_monitored_item(params)

    def modify_item(self, params: ua.MonitoredItemModifyRequest) -> ua.MonitoredItemModifyResult:
        return super()._modify_monitored_item(params)

    def delete_item(self, mid: int) -> ua.StatusCode:
        return super()._delete_monitored_items(mid)

    # -- asyncua's private entry points, routed to the hooks
    async def _create_data_change_monitored_item(
        self, params: ua.MonitoredItemCreateRequest
    ) -> ua.MonitoredItemCreateResult:
        return await self.create_data_change_item(params)

    def _modify_monitored_item(self, params: ua.MonitoredItemModifyRequest) -> ua.MonitoredItemModifyResult:
        return self.modify_item(params)

    def _delete_monitored_items(self, mid: int) -> ua.StatusCode:
        return self.delete_item(mid)


TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("6 monitored item service", MonitoredItemService, "__init__", ("self", "isub", "aspace")),
    *(
        InstanceAttribute("6 monitored item service", MonitoredItemService, name)
        for name in (
            "_monitored_items",
            "_monitored_events",
            "_monitored_datachange",
            "_monitored_item_counter",
            "isub",
            "aspace",
        )
    ),
    Touchpoint("6 monitored item service", MonitoredItemService, "_revise_queue_size", ("self", "requested")),
    Touchpoint(
        "6 monitored item service", MonitoredItemService, "_create_data_change_monitored_item", ("self", "params")
    ),
    Touchpoint("6 monitored item service", MonitoredItemService, "_modify_monitored_item", ("self", "params")),
    Touchpoint("6 monitored item service", MonitoredItemService, "_delete_monitored_items", ("self", "mid")),
    # called by InternalSubscription when it ends (stop, or its lifetime ran out); the bridge's service lets go of
    # its tables there (sync/monitored_items.py)
    Touchpoint("6 monitored item service", MonitoredItemService, "delete_all_monitored_items", ("self",)),
    InstanceAttribute("6 monitored item service", InternalSubscription, "data"),
    Touchpoint(
        "6 monitored item service",
        InternalSubscription,
        "enqueue_datachange_event",
        ("self", "mid", "eventdata", "maxsize"),
    ),
    InstanceAttribute("6 monitored item service", InternalSubscription, "monitored_item_srv"),
    Touchpoint(
        "6 monitored item service", MonitoredItemService, "datachange_callback", ("self", "handle", "value", "error")
    ),
    Touchpoint(
        "6 monitored item service", MonitoredItemService, "trigger_datachange", ("self", "handle", "nodeid", "attr")
    ),
]
