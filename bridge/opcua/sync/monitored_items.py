"""asyncua's monitored item service, with what a gateway for 100,000 tags needs and asyncua 2.1 lacks.

`BridgeSession.create_subscription` puts a `BridgeMonitoredItemService` into every subscription a client creates
(still empty at that point), so nothing outside the bridge's own sessions changes. What differs from asyncua:
- Delete is O(1) per item. asyncua finds an item's callback handle by iterating its handle map from the start; with
  items deleted in order, every step skips all the dead slots before it, so a client with 100,000 items that
  disconnects held the event loop for 5 s here (and asyncua clients drop a server that stalls for 1 s).
- Modify finds the item directly, answers BadMonitoredItemIdInvalid for an unknown id (asyncua answers Good), and
  takes the new client handle, filter and (revised) queue size.
- Deadbands per Part 4 7.22.2 and Part 8 7.2: Absolute and Percent (of the EURange), compared with the last
  *reported* value, so a slow drift is reported once it adds up (asyncua compares with the previous sample and
  does not implement Percent at all). A Percent deadband on a node without EURange, or outside 0..100, is refused
  with BadDeadbandFilterInvalid; a deadband on a non-numeric node with BadFilterNotAllowed.
- A sampled DataValue is kept by reference when its value is an immutable scalar, instead of a deep copy per
  notification: the bridge never mutates a published DataValue. Anything else (arrays, structures) is still copied,
  because asyncua's own code updates some lists in place.
- A data change item is one slotted object (`DataItem`) sharing the node's own NodeId, with one callback for the
  whole service: asyncua keeps about a dozen garbage-collected objects per item, and at 100,000 items the
  collector's full passes over them held the event loop for over a second.
"""

from __future__ import annotations

import asyncio
import copy
import math
import uuid
from datetime import datetime
from typing import Any

from asyncua import ua

from bridge.opcua._asyncua import DataChangeFilter, ItemServiceBase, MonitoredItemData

__all__ = ["BridgeMonitoredItemService", "DataItem", "deadband_error", "no_filter"]

S = ua.StatusCodes
_IMMUTABLE = (bool, int, float, str, bytes, datetime, uuid.UUID, type(None))
_NUMERIC_TYPES = {
    ua.VariantType.SByte,
    ua.VariantType.Byte,
    ua.VariantType.Int16,
    ua.VariantType.UInt16,
    ua.VariantType.Int32,
    ua.VariantType.UInt32,
    ua.VariantType.Int64,
    ua.VariantType.UInt64,
    ua.VariantType.Float,
    ua.VariantType.Double,
}
_NUMERIC_DATATYPES = {ua.NodeId(vt.value) for vt in _NUMERIC_TYPES} | {
    ua.NodeId(ua.ObjectIds.Number),
    ua.NodeId(ua.ObjectIds.Integer),
    ua.NodeId(ua.ObjectIds.UInteger),
}
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)


_DEFAULT_ENCODING = ua.QualifiedName()


class DataItem:
    """A data change monitored item: what asyncua's MonitoredItemData holds for one, in slots."""

    __slots__ = (
        "callback_handle",
        "client_handle",
        "filter",
        "mode",
        "monitored_item_id",
        "queue_size",
        "read_value_id",
        "where_clause_evaluator",
    )

    def __init__(
        self,
        monitored_item_id: int,
        mode: ua.MonitoringMode,
        read_value_id: ua.ReadValueId,
        client_handle: int,
        queue_size: int,
        flt: Any,
    ) -> None:
        self.monitored_item_id = monitored_item_id
        self.mode = mode
        self.read_value_id = read_value_id
        self.client_handle = client_handle
        self.queue_size = queue_size
        self.filter = flt
        self.callback_handle: int | None = None
        self.where_clause_evaluator = None  # events only; asyncua's code looks for it


def _keep(dv: ua.DataValue) -> ua.DataValue:
    value = dv.Value.Value if dv.Value is not None else None
    return dv if isinstance(value, _IMMUTABLE) else copy.deepcopy(dv)


def _numbers(variant: ua.Variant | None) -> list[float] | None:
    """The numeric value(s) of a Variant (one per array element), or None if it is not numeric."""
    if variant is None or variant.VariantType not in _NUMERIC_TYPES:
        return None
    value = variant.Value
    items = value if isinstance(value, list) else [value]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _exceeds(current: list[float], last: list[float], band: float) -> bool:
    if len(current) != len(last):
        return True
    # NaN differs from everything: a value that turns NaN (or back) is news
    return any(math.isnan(c) != math.isnan(p) or abs(c - p) > band for c, p in zip(current, last, strict=True))


def no_filter(flt: Any) -> bool:
    """asyncua decodes an absent filter as an empty ExtensionObject, not None."""
    return flt is None or (isinstance(flt, ua.ExtensionObject) and flt.Body is None)


def deadband_error(flt: Any, data_type: ua.NodeId | None, eu_range: ua.Range | None) -> int | None:
    """The StatusCode refusing a data change item's filter for a node, or None if the filter can be applied."""
    if no_filter(flt):
        return None
    if not isinstance(flt, DataChangeFilter):
        return S.BadMonitoredItemFilterUnsupported  # e.g. an AggregateFilter: not offered
    if flt.DeadbandType == ua.DeadbandType.None_:
        return None
    if flt.DeadbandType not in (ua.DeadbandType.Absolute, ua.DeadbandType.Percent):
        return S.BadDeadbandFilterInvalid
    if data_type is None or data_type not in _NUMERIC_DATATYPES:
        return S.BadFilterNotAllowed
    if flt.DeadbandType == ua.DeadbandType.Absolute:
        return S.BadDeadbandFilterInvalid if not flt.DeadbandValue >= 0 else None
    if eu_range is None or not 0.0 <= flt.DeadbandValue <= 100.0:
        return S.BadDeadbandFilterInvalid
    return None


_BULK_ITEMS = 1_000  # a subscription ending with this many data change items lets go of them in slices
_RELEASE_PER_TURN = 5_000  # callbacks removed from the address space between two turns of the event loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _release_callbacks(aspace: Any, handles: list[int]) -> None:
    for i in range(0, len(handles), _RELEASE_PER_TURN):
        for handle in handles[i : i + _RELEASE_PER_TURN]:
            try:
                aspace.delete_datachange_callback(handle)
            except KeyError:
                pass  # its node went meanwhile (a re-browse), and its callbacks with it
        await asyncio.sleep(0)


class BridgeMonitoredItemService(ItemServiceBase):
    def __init__(self, isub: Any, aspace: Any) -> None:
        super().__init__(isub, aspace)
        self._reported: dict[int, ua.DataValue] = {}  # item -> the last value sent to the client
        self._bands: dict[int, float] = {}  # item -> absolute deadband (Percent already turned into units)
        self._callback = self.datachange_callback  # one bound method for every item, not one each
        self._release: asyncio.Task[None] | None = None  # callbacks of a deleted subscription leaving (see below)

    def delete_all_monitored_items(self) -> None:
        """The subscription ends. It and this service are a reference cycle (each holds the other), which a freeze
        (bridge/runtime/gc_policy.py: after monitored items were created in bulk) may have taken out of the
        collector's view for good; so what they hold goes now, by reference counting: the item tables, sized for
        every item the client ever had (a dict does not shrink as it empties), are replaced by empty ones.

        A client leaving with many data change items: their callbacks leave the address space in slices between
        turns of the event loop (100,000 at once held it for 0.4 s). Until then a change of such a node calls
        `datachange_callback` with a handle no item has any more, which does nothing."""
        loop = _running_loop()
        if len(self.datachange_items) >= _BULK_ITEMS and loop is not None:
            handles = list(self.datachange_items)
            # what is left for the item by item delete below: the event items (alarms), a few
            self._monitored_datachange: dict[int, int] = {}
            self._monitored_items = {mid: self.items[mid] for mids in self.event_items.values() for mid in mids}
            self._release = loop.create_task(_release_callbacks(self.aspace, handles), name="release-callbacks")
        super().delete_all_monitored_items()
        self._monitored_items = {}
        self._monitored_datachange = {}
        self._monitored_events: dict[ua.NodeId, list[int]] = {}
        self._reported = {}
        self._bands = {}

    # ---- filters --------------------------------------------------------------------------------------------
    def _node_facts(self, node_id: ua.NodeId) -> tuple[ua.NodeId | None, ua.Range | None]:
        """The node's DataType and its EURange property value, where it has them."""
        node = self.aspace.get(node_id)
        if node is None:
            return None, None
        attr = node.attributes.get(ua.AttributeIds.DataType)
        data_type = attr.value.Value.Value if attr is not None and attr.value is not None else None
        eu_range = None
        for ref in node.references:
            if ref.IsForward and ref.ReferenceTypeId == _HAS_PROPERTY and ref.BrowseName.Name == "EURange":
                prop = self.aspace.get(ref.NodeId)
                value = prop.attributes[ua.AttributeIds.Value].value if prop is not None else None
                candidate = value.Value.Value if value is not None and value.Value is not None else None
                eu_range = candidate if isinstance(candidate, ua.Range) else None
                break
        return data_type, eu_range

    def _deadband(self, node_id: ua.NodeId, flt: Any) -> tuple[int | None, float | None]:
        """(refusal code, deadband in engineering units) of a data change item's filter on a node: the code is None
        when the filter can be applied, the band None when it has no deadband (Percent already turned into units)."""
        if no_filter(flt):
            return None, None
        data_type, eu_range = self._node_facts(node_id)
        error = deadband_error(flt, data_type, eu_range)
        if error is not None or flt.DeadbandType == ua.DeadbandType.None_:
            return error, None
        if flt.DeadbandType == ua.DeadbandType.Percent:
            assert eu_range is not None
            return None, flt.DeadbandValue / 100.0 * abs(eu_range.High - eu_range.Low)
        return None, flt.DeadbandValue

    def _keep_band(self, mid: int, band: float | None) -> None:
        if band is None:
            self._bands.pop(mid, None)
        else:
            self._bands[mid] = band

    # ---- create / modify / delete -------------------------------------------------------------------------
    async def create_data_change_item(self, params: ua.MonitoredItemCreateRequest) -> ua.MonitoredItemCreateResult:
        what = params.ItemToMonitor
        requested = params.RequestedParameters
        flt = None if no_filter(requested.Filter) else requested.Filter
        node = self.aspace.get(what.NodeId)
        error, band = self._deadband(what.NodeId, flt) if node is not None else (None, None)
        if error is not None:
            return ua.MonitoredItemCreateResult(StatusCode=ua.StatusCode(error))
        node_id = node.nodeid if node is not None else what.NodeId  # the address space's own object, shared
        result = ua.MonitoredItemCreateResult()
        result.RevisedSamplingInterval = self.revised_publishing_interval
        result.RevisedQueueSize = self.revise_queue_size(requested.QueueSize)
        result.StatusCode, handle = self.aspace.add_datachange_callback(node_id, what.AttributeId, self._callback)
        if not result.StatusCode.is_good():
            return result
        mid = result.MonitoredItemId = self.next_item_id()
        read_value_id = ua.ReadValueId(
            NodeId=node_id,
            AttributeId=what.AttributeId,
            IndexRange=what.IndexRange,
            DataEncoding=_DEFAULT_ENCODING if not what.DataEncoding.Name else what.DataEncoding,
        )
        item = DataItem(mid, params.MonitoringMode, read_value_id, requested.ClientHandle, result.RevisedQueueSize, flt)
        item.callback_handle = handle
        self.items[mid] = item
        self.datachange_items[handle] = mid
        self._keep_band(mid, band)
        if item.mode != ua.MonitoringMode.Disabled:
            await self.trigger_datachange(handle, node_id, what.AttributeId)
        return result

    def modify_item(self, params: ua.MonitoredItemModifyRequest) -> ua.MonitoredItemModifyResult:
        result = ua.MonitoredItemModifyResult()
        mdata: DataItem | MonitoredItemData | None = self.items.get(params.MonitoredItemId)
        if mdata is None:
            result.StatusCode = ua.StatusCode(S.BadMonitoredItemIdInvalid)
            return result
        requested = params.RequestedParameters
        if mdata.read_value_id is not None and mdata.read_value_id.AttributeId != ua.AttributeIds.EventNotifier:
            error, band = self._deadband(mdata.read_value_id.NodeId, requested.Filter)
            if error is not None:
                result.StatusCode = ua.StatusCode(error)
                return result
            self._keep_band(params.MonitoredItemId, band)
            mdata.filter = requested.Filter
        elif not no_filter(requested.Filter):
            mdata.filter = requested.Filter
        mdata.client_handle = requested.ClientHandle
        mdata.queue_size = self.revise_queue_size(requested.QueueSize)
        result.RevisedSamplingInterval = requested.SamplingInterval
        result.RevisedQueueSize = mdata.queue_size
        return result

    def delete_item(self, mid: int) -> ua.StatusCode:
        mdata = self.items.pop(mid, None)
        if mdata is None:
            return ua.StatusCode(S.BadMonitoredItemIdInvalid)
        self._reported.pop(mid, None)
        self._bands.pop(mid, None)
        node_id = mdata.read_value_id.NodeId if mdata.read_value_id is not None else None
        mids = self.event_items.get(node_id) if node_id is not None else None
        if mids is not None and mid in mids:
            mids.remove(mid)
            if not mids:
                del self.event_items[node_id]
        handle = mdata.callback_handle
        if handle is not None and self.datachange_items.pop(handle, None) is not None:
            self.aspace.delete_datachange_callback(handle)
        return ua.StatusCode()

    # ---- sampling -------------------------------------------------------------------------------------------
    def _report(self, mid: int, mdata: DataItem | MonitoredItemData, value: ua.DataValue) -> bool:
        """Part 4 7.22.2: does this sample change what the client last saw enough to be reported?"""
        last = self._reported.get(mid)
        if last is None:
            return True
        flt = mdata.filter if isinstance(mdata.filter, DataChangeFilter) else None
        trigger = flt.Trigger if flt is not None else ua.DataChangeTrigger.StatusValue
        if value.StatusCode != last.StatusCode:
            return True  # a deadband never hides a status change
        if trigger == ua.DataChangeTrigger.Status:
            return False
        band = self._bands.get(mid)
        if band is not None:
            current, previous = _numbers(value.Value), _numbers(last.Value)
            changed = (
                _exceeds(current, previous, band)
                if current is not None and previous is not None
                else value.Value != last.Value
            )
        else:
            changed = value.Value != last.Value
        if changed:
            return True
        return trigger == ua.DataChangeTrigger.StatusValueTimestamp and (
            value.SourceTimestamp != last.SourceTimestamp or value.SourcePicoseconds != last.SourcePicoseconds
        )

    async def datachange_callback(self, handle: int, value: ua.DataValue, error: ua.StatusCode | None = None) -> None:
        if error:
            if handle in self.datachange_items:  # else the item is gone (delete_all_monitored_items)
                await super().datachange_callback(handle, value, error)
            return
        mid = self.datachange_items.get(handle)
        mdata = self.items.get(mid) if mid is not None else None
        if mdata is None or mdata.mode == ua.MonitoringMode.Disabled:
            return
        assert mid is not None
        kept = _keep(value)
        if not self._report(mid, mdata, kept):
            return
        self._reported[mid] = kept
        event = ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=value)
        await self.enqueue(mid, event, mdata.queue_size)
