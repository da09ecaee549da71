"""Test doubles shared by the unit tests: one complete in-memory WinCC client, and a virtual clock.

`FakeWinCC` implements every method of the WinCCClient protocol (bridge/wincc/client.py) with the behaviour the
protocol documents (tests/unit/test_fakes.py checks it against the protocol, signatures included), so a unit test
of the UA side never needs a hand-made partial stand-in. `FakeClock` is a Clock (bridge/runtime/clock.py) whose
time moves only when a test says so: poll cycles run as fast as the code does, with no real-time waits.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.wincc.errors import WinCCNotFound, WinCCRejected, WinCCUnreachable
from bridge.wincc.models import (
    Alarm,
    ArchiveValue,
    Folder,
    TagError,
    TagErrorKind,
    TagInfo,
    TagValue,
    WriteError,
    WriteResult,
)
from tests.helpers import next_turn

__all__ = ["FakeClock", "FakeWinCC"]


class FakeWinCC:
    """A WinCC REST side in memory. Knobs (all public attributes):
    - values: tag -> (value, quality, timestamp); `set()` changes one; `missing` tags answer TagError(not_found);
      `down` makes every read raise WinCCUnreachable; `reads` counts read calls.
    - writes: `calls` records each write's items; `refuse` maps a tag to the WriteError WinCC answers;
      `write_delay` (seconds) holds every write.
    - alarms: `alarms` is the active list; `acknowledge` marks one (WinCCNotFound unknown, 409 if acknowledged),
      recorded in `acknowledged`; `alarm_log` is the history.
    - archive: `series` maps a tag to its values (oldest first); `broken` tags fail at once, `flaky` ones after the
      first page; `gate` (an Event) holds every archive call; counters `requests`, `handed_out`, `inflight`,
      `max_inflight`.
    """

    dialect = "fake"

    def __init__(
        self,
        tags: Sequence[TagInfo] = (),
        *,
        series: Mapping[str, list[ArchiveValue]] | None = None,
        series_times: Mapping[str, list[datetime]] | None = None,
    ) -> None:
        self.tags = list(tags)
        now = datetime.now(UTC)
        self.values: dict[str, tuple[Any, int, datetime]] = {t.name: (0, 0xC0, now) for t in tags}
        self.missing: set[str] = set()
        self.down = False
        self.reads = 0
        self.calls: list[dict[str, Any]] = []
        self.refuse: dict[str, WriteError] = {}
        self.write_delay = 0.0
        self.alarms: list[Alarm] = []
        self.alarm_log: list[Alarm] = []
        self.acknowledged: list[tuple[str, str, str]] = []
        self.series: Mapping[str, list[ArchiveValue]] = series or {}
        self._times: dict[str, list[datetime]] = dict(series_times or {})
        self.broken: set[str] = set()
        self.flaky: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.requests = 0
        self.handed_out = 0
        self.inflight = 0
        self.max_inflight = 0
        self.closed = False

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeWinCC:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.closed = True

    # -- browse -------------------------------------------------------------------------------------------------
    async def browse(self) -> AsyncIterator[Folder | TagInfo]:
        if self.down:
            raise WinCCUnreachable("GET /api/dp/browse: ConnectError")
        seen: set[tuple[str, ...]] = set()
        for tag in self.tags:
            for i in range(1, len(tag.folder) + 1):
                if tag.folder[:i] not in seen:
                    seen.add(tag.folder[:i])
                    yield Folder(path=tag.folder[:i])
            yield tag

    # -- values -------------------------------------------------------------------------------------------------
    def set(self, name: str, value: Any, quality: int = 0xC0) -> None:
        self.values[name] = (value, quality, datetime.now(UTC))

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        self.reads += 1
        if self.down:
            raise WinCCUnreachable("POST /WinCC/REST/Tags/ReadMultiple: ConnectError")
        out: dict[str, TagValue | TagError] = {}
        for n in names:
            if n in self.missing or n not in self.values:
                out[n] = TagError(n, "not found", TagErrorKind.not_found)
            else:
                v, q, ts = self.values[n]
                out[n] = TagValue(n, v, q, ts)
        return out

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        self.calls.append(dict(items))
        if self.write_delay:
            await asyncio.sleep(self.write_delay)
        if self.down:
            return {n: WriteResult(n, WriteError.unreachable, "ConnectError") for n in items}
        out = {n: WriteResult(n, self.refuse.get(n), "", None if n in self.refuse else v) for n, v in items.items()}
        for n, v in items.items():
            if n not in self.refuse and n in self.values:
                self.set(n, v)
        return out

    # -- alarms -------------------------------------------------------------------------------------------------
    async def active_alarms(self) -> list[Alarm]:
        if self.down:
            raise WinCCUnreachable("GET /api/alerts/active: ConnectError")
        return list(self.alarms)

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        alarm = next((a for a in self.alarms if a.id == alarm_id), None)
        if alarm is None:
            raise WinCCNotFound(f"POST /api/alert/{alarm_id}/acknowledge failed", status=404)
        if alarm.acknowledged:
            raise WinCCRejected(f"POST /api/alert/{alarm_id}/acknowledge failed", status=409)
        self.acknowledged.append((alarm_id, comment, user))
        self.alarms = [_acknowledged(a) if a.id == alarm_id else a for a in self.alarms]

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        return [a for a in self.alarm_log if start <= a.timestamp <= end][:limit]

    # -- archive ------------------------------------------------------------------------------------------------
    async def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncIterator[list[ArchiveValue]]:
        name = tag.name if isinstance(tag, TagInfo) else tag
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if name in self.broken:
                raise WinCCUnreachable("GET /api/history: ConnectError")
            if name not in self.series:
                raise WinCCNotFound(f"GET /api/history/{name} failed", status=404)
            values = self.series[name]
            times = self._times.get(name)
            if times is None:
                times = self._times[name] = [v.timestamp for v in values]
            lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            for i in range(lo, hi, page_size):
                if name in self.flaky and i > lo:
                    raise WinCCUnreachable("GET /api/history: connection reset")
                self.requests += 1
                page = values[i : min(i + page_size, hi)]
                self.handed_out += len(page)
                yield page
        finally:
            self.inflight -= 1


def _acknowledged(alarm: Alarm) -> Alarm:
    from dataclasses import replace

    return replace(alarm, acknowledged=True)


class FakeClock:
    """Virtual monotonic time. `sleep` waits until a test moves time past its deadline; `run_until` moves it from
    one sleeper's deadline to the next (letting every task run in between) until a condition holds."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await next_turn()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(1 for *_, f in self._sleepers if not f.done())

    def _wake_next(self) -> bool:
        """Move time to the earliest live deadline and wake everyone due then. False if nobody sleeps."""
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return False
        deadline = self._sleepers[0][0]
        self.now = max(self.now, deadline)
        while self._sleepers and self._sleepers[0][0] <= deadline:
            future = heapq.heappop(self._sleepers)[2]
            if not future.done():
                future.set_result(None)
        return True

    async def _settle(self, condition: Callable[[], Any] | None, turns: int) -> Any:
        for _ in range(turns):
            if condition is not None and (result := _value(condition())):
                return result
            await next_turn()
        return _value(condition()) if condition is not None else None

    async def run_until(
        self, condition: Callable[[], Any | Awaitable[Any]], *, within_s: float = 60.0, what: str = "", turns: int = 50
    ) -> Any:
        """Let the loops run (virtual time moving from deadline to deadline) until `condition()` is truthy, and
        return its value. Fails if it is not within `within_s` virtual seconds. No real time passes."""
        until = self.now + within_s
        while True:
            result = await self._settle(lambda: condition(), turns)
            if result:
                return result
            upcoming = min((d for d, _, f in self._sleepers if not f.done()), default=None)
            if upcoming is None or upcoming > until or not self._wake_next():
                raise AssertionError(f"not within {within_s} virtual s: {what or condition}")

    async def advance(self, seconds: float, *, turns: int = 50) -> None:
        """Move time by `seconds`, waking every sleeper due on the way in order."""
        until = self.now + seconds
        while True:
            upcoming = min((d for d, _, f in self._sleepers if not f.done()), default=None)
            if upcoming is None or upcoming > until:
                break
            self._wake_next()
            await self._settle(None, turns)
        self.now = until
        await self._settle(None, turns)


def _value(result: Any) -> Any:
    if inspect.isawaitable(result):
        raise TypeError("FakeClock conditions are plain functions")
    return result


def protocol_members(protocol: type) -> Iterable[str]:
    """The methods and attributes a Protocol class declares (what a complete fake must have)."""
    for name in vars(protocol):
        if name in ("__aenter__", "__aexit__") or not name.startswith("_"):
            yield name
    yield from getattr(protocol, "__annotations__", {})
