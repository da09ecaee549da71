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

Values are published straight into asyncua's node data rather than through `write_attribute_value`: asyncua
replaces the value with null whenever the StatusCode is Bad, and the design keeps the last value visible with
the Bad status. The datachange callbacks (subscriptions) are called exactly as asyncua calls them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

from bridge.config import SyncConfig
from bridge.opcua._asyncua import datachange_callbacks, node_table, store_value, subscriptions
from bridge.opcua.model.bridge_status import BridgeStatus
from bridge.opcua.model.status import quality_to_status
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import VARIANT_TYPES, from_wincc, json_variant_type
from bridge.opcua.sync.demand import Demand
from bridge.runtime.backoff import Backoff
from bridge.runtime.clock import SYSTEM_CLOCK, Clock
from bridge.runtime.gc_policy import freeze_long_lived
from bridge.wincc.client import PushingClient, ValuePush, WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import DataType, TagError, TagErrorKind, TagValue

__all__ = ["MAX_READS_NOW", "SyncEngine"]

log = logging.getLogger(__name__)

S = ua.StatusCodes
_GOOD = ua.StatusCode(S.Good)
_ITEM_ERROR = {
    TagErrorKind.not_found: ua.StatusCode(S.BadConfigurationError),  # WinCC no longer knows the tag
    TagErrorKind.bad_answer: ua.StatusCode(S.BadCommunicationError),
    TagErrorKind.item_error: ua.StatusCode(S.Bad),
}
_CONVERSION_FAILED = ua.StatusCode(S.BadTypeMismatch)
_BASE_DATA_TYPE = ua.NodeId(ua.ObjectIds.BaseDataType)
MAX_READS_NOW = 4  # on-demand reads (Read MaxAge) under way at once; more would queue behind a slow WinCC


@dataclass(slots=True)
class _Tag:
    name: str
    node_id: ua.NodeId
    data_type: DataType
    variant_type: ua.VariantType
    value: Any = None  # last value shown (None: none yet)
    status: int = S.BadWaitingForInitialData
    source_ts: datetime | None = None


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
        self._nodes = node_table(server)  # see module docstring
        self._directory = directory
        self._client = client
        self._config = config
        self._status = status
        self._tags: dict[str, _Tag] = {}
        # tag -> WinCC's last answer for it; an answer that is this very object again changed nothing
        self._last: dict[str, TagValue | TagError] = {}
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
            "values_updated_total": 0.0,
            "rest_reads_total": 0.0,
            "rest_read_errors_total": 0.0,
            "pushed_values_total": 0.0,
            "overdue_reads_total": 0.0,
        }
        self._cycle_ms: dict[int, float] = {}  # poll group -> its last cycle
        self._logged_at: dict[str, float] = {}
        self._first_cycles: set[int] | None = None  # groups of the first plan that have not completed a cycle yet
        self._served_as_sent: set[str] = set()  # tags whose values did not fit their declared type (logged once)
        self._push: ValuePush | None = None  # a WinCC that pushes changes (unified): its covered tags are not polled
        # freshness for Read's MaxAge: when each poll group last read all its tags, and tags read on demand
        self._group_of: dict[str, int] = {}
        self._group_read_at: dict[int, float] = {}
        self._read_now_at: dict[str, float] = {}
        self._read_now: dict[str, asyncio.Future[None]] = {}  # tag -> the on-demand read under way
        self._last_poll_complete = False
        self.tags_changed([t.name for t in directory], [])

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
            "poll_cycle_ms": self.slowest_cycle_ms,
            "monitored_items": float(self.demand.monitored_count),
        }

    def _may_log(self, kind: str, every_s: float = 60.0) -> bool:
        """At most one line of a kind a minute: a WinCC in trouble must not flood the log."""
        now = self._clock.monotonic()
        if now - self._logged_at.get(kind, -every_s) < every_s:
            return False
        self._logged_at[kind] = now
        return True

    async def start(self) -> None:
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
        tag = self._tags.get(name)
        if tag is None:
            return
        try:
            value = from_wincc(tag.data_type, value)  # the write path hands over what it sent to WinCC
        except (ValueError, TypeError):
            return  # the next poll shows it
        now = datetime.now(UTC)
        self._last.pop(name, None)  # the next poll shows WinCC's own value and timestamp, whatever it is
        task = asyncio.get_running_loop().create_task(self._publish(tag, value, S.Good, now, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # ---- reads on demand (Read with MaxAge) --------------------------------------------------------------
    def age_s(self, name: str) -> float:
        """Seconds since WinCC last answered for this tag (inf if never; 0 while WinCC pushes its changes)."""
        if self._push is not None and name in self._push.covered:
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
        known = [n for n in dict.fromkeys(names) if n in self._tags]
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
                await self._apply_batch(results, datetime.now(UTC))
                for name in batch:
                    self._read_now_at[name] = started
        except Exception:  # nobody awaits this task's result: a bug must still be seen
            log.exception("unexpected error in a read on demand")
        finally:
            for name in names:
                self._read_now.pop(name, None)

    def tags_changed(self, added: Sequence[str], removed: Sequence[str]) -> None:
        for name in removed:
            self._tags.pop(name, None)
            self._last.pop(name, None)
            self._read_now_at.pop(name, None)
        for name in added:
            info = self._directory.get(name)
            if info is not None:
                self._tags[name] = _Tag(
                    name, self._directory.node_id(name), info.data_type, VARIANT_TYPES[info.data_type]
                )
        # a re-browse may replace a tag's type in place: keep the record in step with the directory
        for name, tag in self._tags.items():
            info = self._directory.get(name)
            if info is not None and info.data_type is not tag.data_type:
                self._tags[name] = _Tag(name, tag.node_id, info.data_type, VARIANT_TYPES[info.data_type])
        self._replan_soon()

    def _publishing_interval(self, subscription_id: int) -> float | None:
        subscription = subscriptions(self._server).get(subscription_id)
        return subscription.data.RevisedPublishingInterval if subscription is not None else None

    # ---- planning ---------------------------------------------------------------------------------------
    def _replan_soon(self) -> None:
        self._dirty = True

    def _replan(self) -> None:
        self._dirty = False
        groups = self.demand.groups(self._tags)
        if self._push is not None:
            # Monitored tags are pushed once WinCC delivers them; until then (and while the socket is down) polled.
            self._push.want(self.demand.monitored_names())
            covered = self._push.covered
            if covered:
                groups = {ms: [n for n in names if n not in covered] for ms, names in groups.items()}
        self._groups = groups
        self._group_of = {name: ms for ms, names in groups.items() for name in names}
        if self._first_cycles is None and self._groups:
            self._first_cycles = set(self._groups)

    def _first_cycle_done(self, interval_ms: int) -> None:
        """Once every tag has been polled, its record, last answer and value in the address space exist for good:
        take them out of the garbage collector's passes (see bridge/runtime/gc_policy.py), once."""
        pending = self._first_cycles
        if not pending or interval_ms not in pending:
            return
        pending.discard(interval_ms)
        if not pending:
            freeze_long_lived("first values", len(self._tags))

    async def _housekeeping(self) -> None:
        while True:
            await self._clock.sleep(1.0)
            self.demand.prune(subscriptions(self._server))
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
                delay = period - (self._clock.monotonic() - started)
            else:
                delay = backoff.next()
            await self._clock.sleep(max(0.0, delay))

    async def _pushed(self, results: dict[str, TagValue | TagError]) -> None:
        """A change WinCC pushed: applied the moment it arrives, exactly like a polled answer."""
        self._counters["pushed_values_total"] += len(results)
        await self._apply_batch(results, datetime.now(UTC))

    async def _read(
        self, batch: list[str]
    ) -> tuple[list[str], dict[str, TagValue | TagError] | None, WinCCError | None]:
        try:
            return batch, await self._client.read(batch), None
        except WinCCError as exc:
            return batch, None, exc

    async def _poll(self, names: list[str]) -> bool:
        """One cycle of a poll group. Its batches are read concurrently (the REST client caps requests in flight)
        and each is applied the moment it arrives: the first tags of a big group do not wait for the last batch,
        and no step holds the event loop for the whole group. True unless every batch failed."""
        size = self._config.batch_size
        reads = [asyncio.ensure_future(self._read(names[i : i + size])) for i in range(0, len(names), size)]
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
                    await self._mark_failed(batch)
                    continue
                answered += 1
                await self._apply_batch(results, datetime.now(UTC))
        except Exception:  # a bug must not stop polling forever
            log.exception("unexpected error in poll cycle")
            await self._mark_failed(names)
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

    async def _arrivals(self, reads: list[asyncio.Future[Any]], names: list[str], size: int) -> Any:
        """The reads' results as they arrive. Once WinCC has answered none of them for `_overdue_s` (since the cycle
        began or since its last answer: a big cycle that makes progress through the request cap is not overdue),
        the batches still out are marked failed there and then (once; see the module docstring), and their answers
        are still awaited."""
        progress = time.monotonic()
        batches = {read: names[i * size : (i + 1) * size] for i, read in enumerate(reads)}
        pending: set[asyncio.Future[Any]] = set(reads)
        overdue = False
        while pending:
            timeout = None if overdue else max(0.0, progress + self._overdue_s - time.monotonic())
            done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            progress = time.monotonic()
            if not done:
                overdue = True
                self._counters["overdue_reads_total"] += len(pending)
                if self._may_log("overdue"):
                    log.warning(
                        "WinCC has not answered %d reads in %.1f s: their tags are marked bad until it does",
                        len(pending),
                        self._overdue_s,
                    )
                for read in pending:
                    await self._mark_failed(batches[read])
                continue
            for read in reads:  # in request order, as far as they are done
                if read in done:
                    yield read.result()

    async def _apply_batch(self, results: dict[str, TagValue | TagError], now: datetime) -> None:
        # Most answers of a cycle are what WinCC sent last time, as the very same object (the REST client's
        # caches): one comprehension over identities finds the few that are not.
        last = self._last
        changed = [(name, result) for name, result in results.items() if last.get(name) is not result]
        tags = self._tags
        for name, result in changed:
            tag = tags.get(name)
            if tag is None:
                continue
            last[name] = result
            if type(result) is TagValue:
                await self._apply(tag, result, now)
            elif isinstance(result, TagError):
                code = _ITEM_ERROR[result.kind].value
                if code != tag.status:  # an error that persists is news once, not every cycle
                    await self._publish(tag, tag.value, code, tag.source_ts, now)

    async def _apply(self, tag: _Tag, result: TagValue, now: datetime) -> None:
        status = quality_to_status(result.quality).value
        try:
            value = from_wincc(tag.data_type, result.value)
            variant_type = VARIANT_TYPES[tag.data_type]
        except (ValueError, TypeError):
            as_sent = json_variant_type(result.value)
            if as_sent is None:  # nothing a client could use (null, an object, a list)
                value, status, variant_type = tag.value, _CONVERSION_FAILED.value, tag.variant_type
            else:
                value, variant_type = result.value, as_sent
                self._serve_as_sent(tag, as_sent, result.value)
        if (
            value == tag.value
            and status == tag.status
            and result.timestamp == tag.source_ts
            and type(value) is type(tag.value)
        ):
            return
        tag.variant_type = variant_type
        await self._publish(tag, value, status, result.timestamp, now)

    def _serve_as_sent(self, tag: _Tag, variant_type: ua.VariantType, sent: Any) -> None:
        """WinCC declared a type its values do not fit (docs/wincc-rest-api.md: trust the JSON value, log the tag once). The
        value goes out as WinCC sent it, so the node's DataType becomes BaseDataType, which admits any."""
        if tag.name in self._served_as_sent:
            return
        self._served_as_sent.add(tag.name)
        log.warning(
            "tag %s: WinCC declares it %s but sends %s values; serving them as %s (DataType BaseDataType)",
            tag.name,
            tag.data_type.value,
            type(sent).__name__,
            variant_type.name,
        )
        node = self._nodes.get(tag.node_id)
        attr = node.attributes.get(ua.AttributeIds.DataType) if node is not None else None
        if attr is not None:
            attr.value = ua.DataValue(ua.Variant(_BASE_DATA_TYPE, ua.VariantType.NodeId))

    async def _mark_failed(self, names: Iterable[str]) -> None:
        failed = S.UncertainLastUsableValue if self._config.on_failure == "uncertain" else S.BadCommunicationError
        now = datetime.now(UTC)
        for name in names:
            self._last.pop(name, None)  # when WinCC answers again, even the same answer is news (Good again)
            tag = self._tags.get(name)
            if tag is None or tag.status == failed:
                continue
            if tag.status == S.BadWaitingForInitialData and failed == S.UncertainLastUsableValue:
                continue  # nothing to be uncertain about yet
            await self._publish(tag, tag.value, failed, tag.source_ts, now)

    async def _publish(self, tag: _Tag, value: Any, status: int, source_ts: datetime | None, now: datetime) -> None:
        tag.value, tag.status, tag.source_ts = value, status, source_ts
        node = self._nodes.get(tag.node_id)
        if node is None:
            return
        variant = ua.Variant(value, tag.variant_type) if value is not None else ua.Variant(None, ua.VariantType.Null)
        dv = ua.DataValue(
            variant, StatusCode=ua.StatusCode(status), SourceTimestamp=source_ts or now, ServerTimestamp=now
        )
        attval = store_value(node, dv)
        self._counters["values_updated_total"] += 1
        for handle, callback in datachange_callbacks(attval):
            try:
                await callback(handle, dv)
            except Exception:
                log.exception("datachange callback failed for %s", tag.name)

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
        update["TagCount"] = len(self._tags)
        update["PollCycleMs"] = round(self.slowest_cycle_ms, 1)
        update["LateCycles"] = int(self._counters["late_cycles_total"])
        await self._status.update(**update)
