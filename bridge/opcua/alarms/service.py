"""WinCC alarms as OPC UA conditions: the poller, the conditions it keeps, and where their events go.

Every `alarms.poll_ms` one REST read of WinCC's active alarms (`WinCCClient.active_alarms`) is reconciled with the
conditions held (state.py); each resulting change updates the condition's nodes (nodes.py) and is sent as one event
to every event monitored item on the Server object, the WinCC root or a folder above the alarm's source, whose
where clause it passes.

- WinCC unreachable (the read fails): every condition keeps its state, its Quality turns BadCommunicationError and
  one event per condition says so; the poller keeps polling at its rate. The first poll that answers reconciles
  everything (alarms that went or were acknowledged meanwhile get their events) and Quality is Good again.
- A poll whose answer was asked for before an Acknowledge or comment of ours completed is dropped (the next poll
  reconciles): it could still list the alarm unacknowledged and would look like a new occurrence.
- A station whose WinCC pushes alarm changes (unified: `AlarmPushingClient`) is not polled while its push is live:
  each notification is applied when it arrives (the first after a (re)subscribe is the whole active list and is
  reconciled like a poll's answer). While the push is down the station is polled as above, at once and then every
  `alarms.poll_ms`; a poll answer overtaken by a notification is dropped (the notification is newer). WinCC's
  notification of an Acknowledge of ours can overtake its answer to it: a pushed change of an alarm with an
  Acknowledge of ours in flight waits until ours is applied (`AcksInFlight`), so the condition keeps the UA user
  and comment.
- The methods (Acknowledge, AddComment, ConditionRefresh/2, Enable/Disable) are in methods.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import Server, ua

from bridge.config import AlarmsConfig
from bridge.opcua.alarms.delivery import deliver_event, event_items
from bridge.opcua.alarms.events import EventRecord, matches, select
from bridge.opcua.alarms.nodes import ConditionNodes
from bridge.opcua.alarms.records import Source, condition_name, condition_record
from bridge.opcua.alarms.state import AlarmBook, Change, Condition, Reason
from bridge.opcua.model.tags import TagDirectory
from bridge.runtime.clock import seconds_to_tick
from bridge.runtime.gc_policy import freeze_long_lived
from bridge.wincc.client import AlarmNews, AlarmPush, AlarmPushingClient, WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Alarm

__all__ = ["AcksInFlight", "AlarmService"]

log = logging.getLogger(__name__)
O = ua.ObjectIds
SERVER = ua.NodeId(O.Server)
_YIELD_EVERY = 100  # changes applied between two turns of the event loop (a new condition is ~35 nodes)
_ACK_GRACE_S = 1.0  # after WinCC answered an acknowledge: how long a pushed change of that alarm waits for ours
_ACK_WAIT_S = 60.0  # the bound on that wait whatever happens (an acknowledge is bounded by wincc.timeouts.write_s)


class AcksInFlight:
    """Alarms with an Acknowledge of ours sent to WinCC and not yet applied to the condition."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Event] = {}

    def begin(self, alarm_id: str) -> asyncio.Event:
        return self._pending.setdefault(alarm_id, asyncio.Event())

    def end(self, alarm_id: str, event: asyncio.Event | None = None) -> None:
        """Ours is applied (or failed, or its grace is over); `event`: only if it is still that acknowledge's."""
        if event is not None and self._pending.get(alarm_id) is not event:
            return
        done = self._pending.pop(alarm_id, None)
        if done is not None:
            done.set()

    async def wait(self, alarm_ids: Sequence[str]) -> None:
        events = [self._pending[i] for i in alarm_ids if i in self._pending]
        if events:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), _ACK_WAIT_S)


class _AcknowledgingClient:
    """The client the condition methods acknowledge through: it notes each acknowledge in `AcksInFlight` until the
    methods have applied it (the service ends it in `apply`), or it failed, or `_ACK_GRACE_S` after the answer."""

    def __init__(self, inner: WinCCClient, acks: AcksInFlight) -> None:
        self._inner = inner
        self._acks = acks

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        event = self._acks.begin(alarm_id)
        try:
            await self._inner.acknowledge(alarm_id, comment, user)
        except BaseException:
            self._acks.end(alarm_id, event)
            raise
        asyncio.get_running_loop().call_later(_ACK_GRACE_S, self._acks.end, alarm_id, event)

    def __getattr__(self, name: str) -> Any:  # everything else is the client's own
        return getattr(self._inner, name)


class AlarmService:
    """Owns the conditions of one bridge. `start()` once the address space is built, `stop()` at shutdown."""

    def __init__(
        self,
        server: Server,
        directory: TagDirectory,
        client: WinCCClient,
        config: AlarmsConfig,
        alarms_ns: int,
        root_node_id: ua.NodeId,
        feeds: Sequence[tuple[str, WinCCClient]] | None = None,
    ) -> None:
        """`client` acknowledges (any station's alarm); `feeds` are (alarm id prefix, client) per WinCC station,
        each polled on its own so one station down marks only its own conditions (default: `client` alone)."""
        self.server = server
        self.directory = directory
        self.feeds = list(feeds) if feeds is not None else [("", client)]
        self.acks = AcksInFlight()
        pushing = any(isinstance(c, AlarmPushingClient) for _, c in self.feeds)
        self.client = cast(WinCCClient, _AcknowledgingClient(client, self.acks)) if pushing else client
        self.config = config
        self.ns = alarms_ns
        self.root = root_node_id
        self.book = AlarmBook()
        self.records: dict[str, EventRecord] = {}  # alarm id -> the condition's last event
        self.sources: dict[str, Source] = {}  # alarm id -> where its condition hangs
        self.nodes = ConditionNodes(server.iserver.aspace, alarms_ns, self.records.get)
        self.generation = 0  # bumped by every local change (acknowledge, comment)
        self.poll_errors = 0
        self.polls = 0
        self.events_sent = 0
        self.connected: bool | None = None
        self.pushes = 0  # notifications applied from a station that pushes
        self._pushes: dict[str, AlarmPush] = {}  # station prefix -> its alarm push
        self._pushed_seq: dict[str, int] = {}  # station prefix -> notifications applied (a poll answer checks it)
        self._wake = asyncio.Event()  # a push went live or down: poll (or stop polling) now
        self._task: asyncio.Task[None] | None = None
        self._marked_tags = -1

    # ---- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.mark_notifiers()
        for prefix, client in self.feeds:
            if isinstance(client, AlarmPushingClient):
                push = client.open_alarm_push(functools.partial(self._pushed, prefix), self._wake.set)
                self._pushes[prefix] = push
                push.start()
        self._task = asyncio.create_task(self._run(), name="alarm-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        pushes, self._pushes = list(self._pushes.values()), {}
        await asyncio.gather(*(push.aclose() for push in pushes), return_exceptions=True)

    def mark_notifiers(self) -> None:
        """Make the WinCC root and every folder an event notifier, so a client may subscribe to any area (asyncua
        refuses an event item on a node without SubscribeToEvents). Repeated when the model has changed."""
        if self._marked_tags == len(self.directory):
            return
        self._marked_tags = len(self.directory)
        aspace = self.server.iserver.aspace
        folder_ns = self.directory.folder_ns
        todo = [self.root]
        seen: set[ua.NodeId] = set()
        while todo:
            node_id = todo.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            self.nodes.make_notifier(node_id)
            node = aspace.get(node_id)
            if node is None:
                continue
            todo.extend(
                r.NodeId
                for r in node.references
                if r.IsForward and r.NodeId.NamespaceIndex == folder_ns and r.ReferenceTypeId == ua.NodeId(O.Organizes)
            )

    def model_changed(self) -> None:
        """Tags were added, removed or rebuilt by a re-browse: every folder is a notifier again, and each condition
        is placed anew (its tag may be gone: then it hangs under the WinCC root) with its references restored."""
        self._marked_tags = -1
        self.mark_notifiers()
        self.nodes.forget_links()
        for alarm_id, old in list(self.sources.items()):
            cond = self.book.get(alarm_id)
            if cond is None:
                continue
            source = self.sources[alarm_id] = self.source_of(cond)
            self.nodes.link(source.chain, source.node_id if source.is_tag else None)
            self.nodes.attach(alarm_id, old.node_id, source.node_id)
            record = self.records.get(alarm_id)
            if record is not None:
                self.records[alarm_id] = condition_record(
                    cond, self.condition_id(alarm_id), source, record.value("ReceiveTime")
                )
        self.nodes.links_checked()

    # ---- polling --------------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        period = self.config.poll_ms / 1000
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self.poll_once()
            except Exception:  # a bug in one cycle must not end alarm polling for good
                log.exception("alarm poll failed")
            wait = seconds_to_tick(period, asyncio.get_running_loop().time(), since=started)  # the grid: clock.py
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    def _polled_feeds(self) -> list[tuple[str, WinCCClient]]:
        """The stations to poll: all but those whose push is live."""
        return [(p, c) for p, c in self.feeds if not (p in self._pushes and self._pushes[p].live)]

    async def poll_once(self) -> None:
        """One REST read of the active alarms per polled WinCC station (concurrently), each reconciled on its own."""
        generation = self.generation
        feeds = self._polled_feeds()
        if not feeds:
            return
        pushed = dict(self._pushed_seq)
        answers = await asyncio.gather(*(client.active_alarms() for _, client in feeds), return_exceptions=True)
        for (prefix, _), answer in zip(feeds, answers, strict=True):
            if self._pushed_seq.get(prefix) != pushed.get(prefix):
                continue  # the station's push delivered while this poll was on its way: the push is newer
            if isinstance(answer, WinCCError):
                self.poll_errors += 1
                if self.connected is not False:
                    log.warning("alarm poll failed, conditions keep their state with BadCommunicationError: %s", answer)
                self.connected = False
                await self.apply(self.book.unreachable(prefix=prefix))
                continue
            if isinstance(answer, BaseException):
                raise answer
            self.polls += 1
            if self.connected is False:
                log.info("alarm poll answers again: reconciling %d conditions", len(self.book))
            self.connected = True
            if generation != self.generation:
                continue  # an acknowledge or comment completed while this answer was on its way: next poll
            self.mark_notifiers()
            await self.apply(self.book.reconcile(answer, prefix=prefix))

    async def reconcile(self, alarms: Sequence[Alarm]) -> None:
        await self.apply(self.book.reconcile(alarms))

    async def _pushed(self, prefix: str, news: AlarmNews) -> None:
        """A notification of a station's alarm push, applied the moment it arrives."""
        self._pushed_seq[prefix] = self._pushed_seq.get(prefix, 0) + 1
        self.pushes += 1
        if news.complete and self.connected is False:
            log.info("alarm push is live: reconciling %d conditions", len(self.book))
        self.connected = True
        self.mark_notifiers()
        await self.acks.wait([a.id for a in news.alarms] + news.gone)
        if news.complete:
            changes = self.book.reconcile(news.alarms, prefix=prefix)
        else:
            changes = self.book.update(news.alarms, news.gone)
        await self.apply(changes)

    # ---- changes -> nodes and events ------------------------------------------------------------------------------
    def source_of(self, cond: Condition) -> Source:
        return self.source_for(cond.tag)

    def source_for(self, tag_name: str | None) -> Source:
        """The source node of an alarm on `tag_name`: the tag if the bridge serves it, else the WinCC root."""
        tag = self.directory.get(tag_name) if tag_name else None
        folders = [self.root]
        if tag is None:
            return Source(self.root, "WinCC", (SERVER, self.root), False)
        for depth in range(1, len(tag.folder) + 1):
            folders.append(self.directory.folder_node_id(tag.folder[:depth]))
        return Source(self.directory.node_id(tag.name), tag.name, (SERVER, *folders), True)

    def condition_id(self, alarm_id: str) -> ua.NodeId:
        return ua.NodeId(alarm_id, self.ns)

    async def apply(self, changes: Sequence[Change]) -> None:
        now = datetime.now(UTC)
        built = 0
        for i, change in enumerate(changes):
            cond = change.condition
            source = self.sources.get(cond.alarm_id)
            if source is None:
                built += 1
                source = self.sources[cond.alarm_id] = self.source_of(cond)
                self.nodes.link(source.chain, source.node_id if source.is_tag else None)
                self.nodes.add(cond.alarm_id, condition_name(cond.alarm_class, cond.alarm_id), source.node_id)
            record = condition_record(cond, self.condition_id(cond.alarm_id), source, now)
            self.records[cond.alarm_id] = record
            if change.reason is Reason.acked:
                self.acks.end(cond.alarm_id)
            log.debug(
                "alarm %s: %s (active=%s acked=%s retain=%s)",
                cond.alarm_id,
                change.reason,
                cond.active,
                cond.acked,
                cond.retain,
            )
            await self.emit(record, source.chain)
            if change.forget:
                self.nodes.remove(cond.alarm_id, source.node_id)
                self.records.pop(cond.alarm_id, None)
                self.sources.pop(cond.alarm_id, None)
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        # thousands of new conditions are long-lived objects: out of the collector's full passes (gc_policy.py)
        freeze_long_lived("alarm conditions", built)

    async def emit(
        self,
        record: EventRecord,
        chain: Sequence[ua.NodeId],
        subscription_id: int | None = None,
        mid: int | None = None,
        unbounded: bool = False,
    ) -> int:
        items = event_items(self.server, chain, subscription_id, mid)
        if not items:
            return 0
        sent = await deliver_event(items, select, matches, record, unbounded)
        self.events_sent += sent
        return sent

    # ---- health ---------------------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        active, unacked = self.book.counts()
        return {
            "alarms_active": active,
            "alarms_unacknowledged": unacked,
            "alarm_conditions": len(self.records),
            "alarm_poll_errors_total": self.poll_errors,
            "alarm_polls_total": self.polls,
            "alarm_pushes_total": self.pushes,
            "alarm_push_live": sum(push.live for push in self._pushes.values()),  # stations not polled now
            "alarm_events_sent_total": self.events_sent,
        }
