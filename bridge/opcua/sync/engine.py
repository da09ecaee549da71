"""Keeps tag values in the address space in step with WinCC through batched REST reads.

One task per poll interval reads its tags in `sync.batch_size` batches, all requested at once (the REST client
keeps at most `max_concurrency` in flight), and applies each batch the moment it arrives: it converts and maps
quality, and writes only what changed (value, status or source timestamp). The REST client hands back the very
same TagValue for an item WinCC repeated unchanged, so most tags of a cycle cost one identity check. A cycle that
overruns is counted and logged, and the next one starts right after it: cycles never pile up. The tags of a failed
batch keep their last value with BadCommunicationError (or UncertainLastUsableValue) within that cycle; when every
batch fails, WinCC counts as down and the group retries with backoff; Good returns without a restart. When WinCC
answers none of a cycle's reads for `read_timeout_s`, the batches still out are overdue: their tags are marked the
same way at that moment, not only when the REST client gives up (which, with retries, can take several timeouts),
so a slow WinCC never leaves stale values looking Good; an answer that comes later still applies.

This module schedules the reads (poll groups, reads on demand, the overdue rule); how an answer becomes a value in
the address space is values.py. Every wait runs on the injected clock (bridge/runtime/clock.py), so tests drive
poll cycles and the overdue rule in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

from bridge.config import SyncConfig
from bridge.opcua._asyncua import subscriptions
from bridge.opcua.model.bridge_status import BridgeStatus
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import from_wincc
from bridge.opcua.sync.demand import Demand
from bridge.opcua.sync.values import TagValues
from bridge.runtime.backoff import Backoff
from bridge.runtime.clock import SYSTEM_CLOCK, Clock, sleep_to_tick
from bridge.runtime.gc_policy import FREEZE_FROM_TAGS, collect_dropped, freeze_long_lived, paused
from bridge.wincc.client import PushingClient, ValuePush, WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import TagError, TagValue

__all__ = ["MAX_READS_NOW", "SyncEngine"]

log = logging.getLogger(__name__)

S = ua.StatusCodes
_RECORDS_PER_STEP = 10_000  # tag records made between two turns of the event loop at start (~40 ms)
MAX_READS_NOW = 4  # on-demand reads (Read MaxAge) under way at once; more would queue behind a slow WinCC
# one batch read: its tags, WinCC's answers (None: the read failed) and why it failed
_Arrival = tuple[list[str], Mapping[str, TagValue | TagError] | None, WinCCError | None]


class SyncEngine:
    def __init__(
        self,
        server: Server,
        directory: TagDirectory,
        client: WinCCClient,
        config: SyncConfig,
        status: BridgeStatus | None = None,
        clock: Clock = SYSTEM_CLOCK,
        read_timeout_s: float = 10.0,
    ) -> None:
        self._server = server
        self._clock = clock  # monotonic time and sleep of every loop here (tests drive it)
        self._overdue_s = read_timeout_s  # a batch not answered this long after its cycle began is marked failed
        self._directory = directory
        self._client = client
        self._config = config
        self._status = status
        self._values = TagValues(server, directory, config.on_failure)
        self.demand = Demand(
            directory,
            config,
            on_change=self._replan_soon,
            publishing_interval=self._publishing_interval,
            monotonic=clock.monotonic,
        )
        self._groups: dict[int, list[str]] = {}
        self._dirty = True
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._connected = False
        self._last_success: datetime | None = None
        self._counters = {
            "poll_cycles_total": 0.0,
            "late_cycles_total": 0.0,
            "poll_errors_total": 0.0,
            "rest_reads_total": 0.0,
            "rest_read_errors_total": 0.0,
            "pushed_values_total": 0.0,
            "overdue_reads_total": 0.0,
        }
        self._cycle_ms: dict[int, float] = {}  # poll group -> its last cycle
        self._logged_at: dict[str, float] = {}
        # groups that have not completed a cycle since the last bulk of new long-lived objects (the first plan, or
        # monitored items created in bulk); None: nothing waits to be frozen
        self._first_cycles: set[int] | None = None
        self._items_frozen = 0  # demand.items_added when a freeze was last armed
        self._items_collected = 0  # demand.items_dropped at the last collection of what they left
        self._frozen_once = False  # the first values have been frozen
        self._push: ValuePush | None = None  # a WinCC that pushes changes (unified): its covered tags are not polled
        self._pushed_version = -1  # demand.items_version last told to the push
        # freshness for Read's MaxAge: when each poll group last read all its tags, and tags read on demand
        self._group_of: dict[str, int] = {}
        self._group_read_at: dict[int, float] = {}
        self._read_now_at: dict[str, float] = {}
        self._read_now: dict[str, asyncio.Future[None]] = {}  # tag -> the on-demand read under way
        self._last_poll_complete = False

    # ---- public -----------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_success(self) -> datetime | None:
        return self._last_success

    @property
    def slowest_cycle_ms(self) -> float:
        """The last cycle of the slowest poll group that has tags (what an operator watches)."""
        return max(self._cycle_ms.values(), default=0.0)

    def metrics(self) -> dict[str, float]:
        return {
            **self._counters,
            "values_updated_total": float(self._values.updated),
            "poll_cycle_ms": self.slowest_cycle_ms,
            "monitored_items": float(self.demand.monitored_count),
            "pushed_tags": float(self._push.covered_count if self._push is not None else 0),
        }

    def _may_log(self, kind: str, every_s: float = 60.0) -> bool:
        """At most one line of a kind a minute: a WinCC in trouble must not flood the log."""
        now = self._clock.monotonic()
        if now - self._logged_at.get(kind, -every_s) < every_s:
            return False
        self._logged_at[kind] = now
        return True

    async def start(self) -> None:
        await self._add_browsed_tags()
        self._server.iserver.handlers.subscriptions = self.demand
        intervals = sorted(set(self._config.poll_groups_ms) | {self._config.interval_ms, self._config.idle_interval_ms})
        self._tasks = [asyncio.create_task(self._run_group(ms), name=f"poll-{ms}ms") for ms in intervals]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="sync-housekeeping"))
        if isinstance(self._client, PushingClient):
            self._push = self._client.open_push(self._pushed, self._replan_soon)
            self._push.start()
        await self._update_status(state="connecting")

    async def stop(self) -> None:
        if self._push is not None:
            await self._push.aclose()
            self._push = None
        for t in [*self._tasks, *set(self._read_now.values())]:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def note_read(self, names: Iterable[str]) -> None:
        self.demand.note_read(names)

    def note_written(self, name: str, value: Any) -> None:
        """WinCC confirmed a write: show the value at once; the next poll brings WinCC's own timestamp."""
        tag = self._values.tags.get(name)
        if tag is None:
            return
        try:
            value = from_wincc(tag.data_type, value)  # the write path hands over what it sent to WinCC
        except (ValueError, TypeError):
            return  # the next poll shows it
        now = datetime.now(UTC)
        self._values.forget_answer(name)  # the next poll shows WinCC's own value and timestamp, whatever it is
        task = asyncio.get_running_loop().create_task(self._values.publish(tag, value, S.Good, now, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # ---- reads on demand (Read with MaxAge) --------------------------------------------------------------
    def age_s(self, name: str) -> float:
        """Seconds since WinCC last answered for this tag (inf if never; 0 while WinCC pushes its changes)."""
        if self._push is not None and self._push.covers(name):
            return 0.0
        read_at = max(
            self._group_read_at.get(self._group_of.get(name, -1), -math.inf), self._read_now_at.get(name, -math.inf)
        )
        return self._clock.monotonic() - read_at

    async def read_now(self, names: Sequence[str], wait_s: float) -> None:
        """Read these tags from WinCC now, in `batch_size` REST reads, and publish what changed; wait at most
        `wait_s` for it. The read goes on after that and updates the address space when WinCC answers. A tag
        already being read joins that read; while MAX_READS_NOW reads are under way (a slow WinCC), nothing new is
        asked: the caller answers from the address space (best effort)."""
        known = [n for n in dict.fromkeys(names) if n in self._values.tags]
        waits = {self._read_now[n] for n in known if n in self._read_now}
        todo = [n for n in known if n not in self._read_now]
        if todo and len(set(self._read_now.values())) < MAX_READS_NOW:
            task = asyncio.ensure_future(self._read_tags_now(todo))
            for name in todo:
                self._read_now[name] = task
            waits.add(task)
        if waits and wait_s > 0:
            await asyncio.wait(waits, timeout=wait_s)  # never cancels them

    async def _read_tags_now(self, names: list[str]) -> None:
        started = self._clock.monotonic()
        size = self._config.batch_size
        try:
            batches = await asyncio.gather(*(self._read(names[i : i + size]) for i in range(0, len(names), size)))
            for batch, results, _error in batches:
                self._counters["rest_reads_total"] += 1
                if results is None:
                    self._counters["rest_read_errors_total"] += 1
                    continue  # the polls judge WinCC's health; a failed extra read changes nothing shown
                await self._values.apply_batch(results, datetime.now(UTC))
                for name in batch:
                    self._read_now_at[name] = started
        except Exception:  # nobody awaits this task's result: a bug must still be seen
            log.exception("unexpected error in a read on demand")
        finally:
            for name in names:
                self._read_now.pop(name, None)

    async def _add_browsed_tags(self) -> None:
        """A record for every tag of the first browse, in slices: 100,000 records made in one go held the event
        loop for 0.6 s (bench/README.md, the traced steps of the worst lag)."""
        names = [n for n in self._directory.names() if n not in self._values.tags]
        for i in range(0, len(names), _RECORDS_PER_STEP):
            with paused():  # a record per tag, all long-lived (bridge/runtime/gc_policy.py)
                self._values.add(names[i : i + _RECORDS_PER_STEP])
            await asyncio.sleep(0)
        self._replan_soon()

    def tags_changed(self, added: Sequence[str], removed: Sequence[str]) -> None:
        for name in removed:
            self._read_now_at.pop(name, None)
        with paused():  # a record per tag, all long-lived (bridge/runtime/gc_policy.py)
            self._values.tags_changed(added, removed)
        self._replan_soon()

    def _publishing_interval(self, subscription_id: int) -> float | None:
        subscription = subscriptions(self._server).get(subscription_id)
        return subscription.data.RevisedPublishingInterval if subscription is not None else None

    # ---- planning ---------------------------------------------------------------------------------------
    def _replan_soon(self) -> None:
        self._dirty = True

    def _replan(self) -> None:
        self._dirty = False
        groups = self.demand.groups(self._values.tags)
        if self._push is not None:
            # Monitored tags are pushed once WinCC delivers them; until then (and while the socket is down) polled.
            if self._pushed_version != self.demand.items_version:  # the names of 100,000 items: only on a change
                self._pushed_version = self.demand.items_version
                self._push.want(self.demand.monitored_names())
            if self._push.covered_count:
                covers = self._push.covers
                groups = {ms: [n for n in names if not covers(n)] for ms, names in groups.items()}
        if groups != self._groups:
            self._values.unsettle_all()  # new batches: their first answers are looked at in full
        self._groups = groups
        self._group_of = {name: ms for ms, names in groups.items() for name in names}
        if not self._groups:
            return
        if self._first_cycles is None and not self._frozen_once:
            self._first_cycles = set(self._groups)
        added = self.demand.items_added - self._items_frozen
        if added >= FREEZE_FROM_TAGS:
            # A client subscribed in bulk: its monitored items live as long as its subscription, and the values they
            # deliver replace the frozen ones. Freeze again once every group has polled with them.
            self._items_frozen = self.demand.items_added
            self._first_cycles = set(self._groups)

    def _first_cycle_done(self, interval_ms: int) -> None:
        """Once every tag has been polled (after start, and after monitored items were created in bulk), what was
        made for good exists: take it out of the garbage collector's passes (see bridge/runtime/gc_policy.py)."""
        pending = self._first_cycles
        if not pending or interval_ms not in pending:
            return
        pending.discard(interval_ms)
        pending.intersection_update(self._groups)  # a group the plan dropped since will not complete a cycle
        if not pending:
            self._first_cycles = None
            what = "monitored items" if self._frozen_once else "first values"
            self._frozen_once = True
            freeze_long_lived(what, len(self._values.tags))

    async def _housekeeping(self) -> None:
        while True:
            await sleep_to_tick(1.0, self._clock)
            self.demand.prune(subscriptions(self._server))
            if collect_dropped("monitored items deleted", self.demand.items_dropped - self._items_collected):
                self._items_collected = self.demand.items_dropped
            expiry = self.demand.next_expiry()
            if expiry is not None and expiry < self._clock.monotonic():
                self._dirty = True

    # ---- polling ----------------------------------------------------------------------------------------
    async def _run_group(self, interval_ms: int) -> None:
        period = interval_ms / 1000
        backoff = Backoff(base_s=max(period, 0.5), cap_s=self._config.max_backoff_s)
        while True:
            if self._dirty:
                self._replan()
            names = self._groups.get(interval_ms, [])
            started = self._clock.monotonic()
            ok = True
            if names:
                ok = await self._poll(names)
                if ok and self._last_poll_complete:
                    self._group_read_at[interval_ms] = started
                elapsed = self._clock.monotonic() - started
                self._counters["poll_cycles_total"] += 1
                self._cycle_ms[interval_ms] = elapsed * 1000
                if elapsed > period:
                    self._counters["late_cycles_total"] += 1
                    if self._may_log("late"):
                        log.warning(
                            "poll cycle of %d tags at %d ms took %.0f ms (late); the next starts at once",
                            len(names),
                            interval_ms,
                            elapsed * 1000,
                        )
            else:
                self._cycle_ms.pop(interval_ms, None)
            if ok:
                if names:
                    self._first_cycle_done(interval_ms)
                backoff.reset()
                await sleep_to_tick(period, self._clock, since=started)  # on the grid: one wake-up for all groups
            else:
                await self._clock.sleep(backoff.next())

    async def _pushed(self, results: dict[str, TagValue | TagError]) -> None:
        """A change WinCC pushed: applied the moment it arrives, exactly like a polled answer."""
        self._counters["pushed_values_total"] += len(results)
        await self._values.apply_batch(results, datetime.now(UTC))

    async def _read(self, batch: list[str]) -> _Arrival:
        try:
            return batch, await self._client.read(batch), None
        except WinCCError as exc:
            return batch, None, exc

    async def _poll(self, names: list[str]) -> bool:
        """One cycle of a poll group. Its batches are read concurrently (the REST client caps requests in flight)
        and each is applied the moment it arrives: the first tags of a big group do not wait for the last batch,
        and no step holds the event loop for the whole group. True unless every batch failed."""
        size = self._config.batch_size
        plan = self._values.plan  # an answer arriving after the plan changed settles nothing (values.py)
        reads = [asyncio.create_task(self._read(names[i : i + size])) for i in range(0, len(names), size)]
        answered, failed = 0, 0
        first_error: WinCCError | None = None
        try:
            async for arrival in self._arrivals(reads, names, size):
                batch, results, error = arrival
                self._counters["rest_reads_total"] += 1
                if results is None:
                    failed += 1
                    self._counters["rest_read_errors_total"] += 1
                    first_error = first_error or error
                    await self._values.mark_failed(batch)
                    continue
                answered += 1
                await self._values.apply_batch(results, datetime.now(UTC), poll=plan == self._values.plan)
        except Exception:  # a bug must not stop polling forever
            log.exception("unexpected error in poll cycle")
            await self._values.mark_failed(names)
            return False
        finally:
            for read in reads:
                read.cancel()  # only the unfinished ones (stop() cancelled us): nothing is left running
        if not answered:
            self._counters["poll_errors_total"] += 1
            if self._connected:
                log.warning("WinCC read failed, %d tags marked bad: %s", len(names), first_error)
            self._connected = False
            await self._update_status(
                connected=False, state="down", PollErrors=int(self._counters["poll_errors_total"])
            )
            return False
        if failed and self._may_log("partial"):
            log.warning("%d of %d REST reads failed, their tags marked bad: %s", failed, failed + answered, first_error)
        if not self._connected and self._counters["poll_errors_total"]:
            log.info("WinCC reachable again")
        self._connected = True
        self._last_success = datetime.now(UTC)
        await self._update_status(connected=True, state="connected")
        self._last_poll_complete = not failed  # read by _run_group right after this returns (no await between)
        return True

    async def _arrivals(
        self, reads: Sequence[asyncio.Future[_Arrival]], names: list[str], size: int
    ) -> AsyncGenerator[_Arrival, None]:
        """The reads' results as they arrive. Once WinCC has answered none of them for `_overdue_s` (since the cycle
        began or since its last answer: a big cycle that makes progress through the request cap is not overdue),
        the batches still out are marked failed there and then (once; see the module docstring), and their answers
        are still awaited. Timed on the engine's clock.

        Each read reports itself done into one queue, and one watchdog per cycle times the silence: waiting on all
        pending reads at every arrival (asyncio.wait) cost a cycle of 200 batches 40,000 callback registrations."""
        position = {read: i for i, read in enumerate(reads)}
        arrived: asyncio.Queue[asyncio.Future[_Arrival] | None] = asyncio.Queue()
        for read in reads:
            read.add_done_callback(arrived.put_nowait)
        progress = [self._clock.monotonic()]  # when WinCC last answered (shared with the watchdog)
        watchdog: asyncio.Task[None] | None = asyncio.create_task(self._silence(progress, arrived))
        left = len(reads)
        try:
            while left:
                done = [await arrived.get()]
                while not arrived.empty():
                    done.append(arrived.get_nowait())
                answered = sorted((read for read in done if read is not None), key=position.__getitem__)
                if answered:
                    progress[0] = self._clock.monotonic()
                    left -= len(answered)
                    if watchdog is not None and watchdog.done():  # it fired as these arrived: not overdue
                        watchdog = asyncio.create_task(self._silence(progress, arrived))
                    for read in answered:  # in request order, as far as they are done
                        yield read.result()
                elif watchdog is not None:
                    watchdog = None  # overdue once per cycle
                    await self._overdue([read for read in reads if not read.done()], names, size, position)
        finally:
            if watchdog is not None:
                watchdog.cancel()

    async def _silence(self, progress: list[float], arrived: asyncio.Queue[Any]) -> None:
        """Put None into `arrived` once WinCC has answered nothing for `_overdue_s` since `progress[0]`."""
        while (remaining := progress[0] + self._overdue_s - self._clock.monotonic()) > 0:
            await self._clock.sleep(remaining)
        arrived.put_nowait(None)

    async def _overdue(
        self,
        pending: list[asyncio.Future[_Arrival]],
        names: list[str],
        size: int,
        position: dict[asyncio.Future[_Arrival], int],
    ) -> None:
        self._counters["overdue_reads_total"] += len(pending)
        if self._may_log("overdue"):
            log.warning(
                "WinCC has not answered %d reads in %.1f s: their tags are marked bad until it does",
                len(pending),
                self._overdue_s,
            )
        for read in pending:
            i = position[read]
            await self._values.mark_failed(names[i * size : (i + 1) * size])

    async def _update_status(self, connected: bool | None = None, state: str | None = None, **fields: Any) -> None:
        if self._status is None:
            return
        update: dict[str, Any] = dict(fields)
        if connected is not None:
            update["Connected"] = connected
        if state is not None:
            update["State"] = state
        if connected:
            update["LastSuccessfulPoll"] = self._last_success
        update["TagCount"] = len(self._values.tags)
        update["PollCycleMs"] = round(self.slowest_cycle_ms, 1)
        update["LateCycles"] = int(self._counters["late_cycles_total"])
        await self._status.update(**update)
