"""Which tags clients want, and how fast: the sync engine polls what is monitored, at the rate it is monitored.

A monitored Value item on a tag asks for a sampling interval; the tag's poll group is the smallest configured
poll interval (`sync.poll_groups_ms`) at or above the fastest interval any client asked for, and the item's
RevisedSamplingInterval reports that real interval back to the client. A requested interval of 0 means "as fast
as offered" and -1 "the subscription's publishing interval" (Part 4, 7.21). Tags nobody monitors are polled at
`sync.idle_interval_ms`, or at `sync.interval_ms` for `sync.read_recent_s` after a client Read them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from asyncua import ua

from bridge.config import SyncConfig
from bridge.opcua.model.tags import TagDirectory

__all__ = ["Demand"]

_VALUE = ua.AttributeIds.Value


class Demand:
    """Tracks monitored items (server-wide: subscription ids are unique per server) and recent Reads."""

    def __init__(
        self,
        directory: TagDirectory,
        config: SyncConfig,
        on_change: Callable[[], None] | None = None,
        publishing_interval: Callable[[int], float | None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._monotonic = monotonic  # injectable: tests run on a virtual clock
        self._config = config
        self._groups = sorted(set(config.poll_groups_ms) | {config.interval_ms})
        self._on_change = on_change or (lambda: None)
        self._publishing_interval = publishing_interval or (lambda subscription_id: None)
        # subscription id -> monitored item id -> (tag name, poll interval ms); by subscription, so a subscription
        # that ends is dropped in one step
        self._items: dict[int, dict[int, tuple[str, int]]] = {}
        self._recent: dict[str, float] = {}  # tag -> monotonic time until which a Read keeps it fast
        self.items_added = 0  # monitored items ever created (the engine freezes long-lived objects after bulk adds)
        self.items_dropped = 0  # monitored items ever deleted (the engine collects their garbage after bulk drops)

    # ---- intervals ---------------------------------------------------------------------------------------
    def group_for(self, requested_ms: float, subscription_id: int | None = None) -> int:
        """The poll interval serving a requested sampling interval (0: as fast as offered; -1: the subscription's
        publishing interval)."""
        if requested_ms < 0:
            publishing = self._publishing_interval(subscription_id) if subscription_id is not None else None
            requested_ms = publishing if publishing is not None else 0.0
        for g in self._groups:
            if requested_ms <= g:
                return g
        return self._groups[-1]

    def plan(self, now: float | None = None) -> dict[str, int]:
        """tag -> poll interval for every tag someone wants faster than idle; the rest are idle."""
        now = self._monotonic() if now is None else now
        wanted: dict[str, int] = {}
        for items in self._items.values():
            for name, interval in items.values():
                if interval < wanted.get(name, 1 << 62):
                    wanted[name] = interval
        fast = self._config.interval_ms
        for name, until in list(self._recent.items()):
            if until < now:
                del self._recent[name]
            elif fast < wanted.get(name, 1 << 62):
                wanted[name] = fast
        return wanted

    def groups(self, names: Iterable[str], now: float | None = None) -> dict[int, list[str]]:
        """Split `names` (every tag) into poll groups by interval."""
        wanted = self.plan(now)
        idle = self._config.idle_interval_ms
        out: dict[int, list[str]] = defaultdict(list)
        for name in names:
            out[wanted.get(name, idle)].append(name)
        return dict(out)

    def next_expiry(self) -> float | None:
        return min(self._recent.values(), default=None)

    # ---- reads -------------------------------------------------------------------------------------------
    def note_read(self, names: Iterable[str]) -> None:
        keep = self._config.read_recent_s
        if keep <= 0:
            return
        until = self._monotonic() + keep
        changed = False
        for name in names:
            if name not in self._recent:
                changed = True
            self._recent[name] = until
        if changed:
            self._on_change()

    @property
    def items_version(self) -> int:
        """Moves whenever a monitored item is created or deleted, so whenever `monitored_names` may have changed
        (the engine tells a push the names only then): both counts only grow."""
        return self.items_added + self.items_dropped

    # ---- SubscriptionObserver ----------------------------------------------------------------------------
    def items_created(
        self, params: ua.CreateMonitoredItemsParameters, results: list[ua.MonitoredItemCreateResult]
    ) -> None:
        changed = False
        sid = params.SubscriptionId
        for request, result in zip(params.ItemsToCreate, results, strict=False):
            if not result.StatusCode.is_good():
                continue
            item = request.ItemToMonitor
            tag = self._directory.tag_for(item.NodeId) if item.AttributeId == _VALUE else None
            if tag is None:
                continue
            interval = self.group_for(request.RequestedParameters.SamplingInterval, sid)
            result.RevisedSamplingInterval = float(interval)
            self._items.setdefault(sid, {})[result.MonitoredItemId] = (tag.name, interval)
            self.items_added += 1
            changed = True
        if changed:
            self._on_change()

    def items_modified(
        self, params: ua.ModifyMonitoredItemsParameters, results: list[ua.MonitoredItemModifyResult]
    ) -> None:
        changed = False
        sid = params.SubscriptionId
        items = self._items.get(sid, {})
        for request, result in zip(params.ItemsToModify, results, strict=False):
            known = items.get(request.MonitoredItemId)
            if known is None or not result.StatusCode.is_good():
                continue
            interval = self.group_for(request.RequestedParameters.SamplingInterval, sid)
            result.RevisedSamplingInterval = float(interval)
            items[request.MonitoredItemId] = (known[0], interval)
            changed = True
        if changed:
            self._on_change()

    def items_deleted(self, subscription_id: int, item_ids: list[int]) -> None:
        items = self._items.get(subscription_id)
        if not items:
            return
        removed = sum(items.pop(i, None) is not None for i in item_ids)
        if not items:
            del self._items[subscription_id]
        if removed:
            self.items_dropped += removed
            self._on_change()

    def subscriptions_deleted(self, subscription_ids: list[int]) -> None:
        dropped = sum(len(self._items.pop(sid, {})) for sid in subscription_ids)
        if dropped:
            self.items_dropped += dropped
            self._on_change()

    def prune(self, live_subscriptions: Iterable[int]) -> None:
        """Forget items of subscriptions that ended without a Delete (lifetime expired)."""
        live = set(live_subscriptions)
        self.subscriptions_deleted([sid for sid in self._items if sid not in live])

    def monitored_names(self) -> set[str]:
        """Tags some monitored item watches (a WinCC that pushes changes is asked to push exactly these)."""
        return {name for items in self._items.values() for name, _ in items.values()}

    @property
    def monitored_count(self) -> int:
        return sum(len(items) for items in self._items.values())
