"""Several WinCC stations behind one endpoint: one `Source` per station, each with its own REST client, sync
engine (poll groups), model, snapshot and reachability.

NodeIds (see README "Several WinCC stations"):
- the single `wincc:` form serves `ns=<tag ns>;s=<exact WinCC tag name>`, unchanged;
- the `sources:` form serves `ns=<tag ns>;s=<source name>/<exact WinCC tag name>` under Objects/WinCC/<source>.
Source names cannot contain "/", so the first "/" always ends the source name, and two stations with the same
tag name never collide. The namespace stays the one `opcua.namespace_uri` (index unchanged), so adding or
removing a source never renumbers the NodeIds an MES has stored for the others; renaming a source does (the name
is part of each of its NodeIds, like a folder a plant engineer renames).

The UA side works on these qualified names throughout (directory, sync, writes, history, alarms); only
`QualifiedClient` knows the prefix, stripping it on the way to WinCC and adding it on the way back, and
`SourceRouter` sends each request to the station its names belong to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from asyncua import ua

from bridge.config import WinCCConfig
from bridge.opcua.model.address_space import display_segment
from bridge.opcua.sync.demand import Demand
from bridge.opcua.sync.engine import SyncEngine
from bridge.wincc.client import AlarmNews, AlarmPush, AlarmPushingClient, PushingClient, ValuePush, WinCCClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Alarm, ArchiveValue, Folder, TagError, TagErrorKind, TagInfo, TagValue, WriteResult

__all__ = [
    "DemandFanOut",
    "QualifiedClient",
    "QualifiedPushingClient",
    "Source",
    "SourceRouter",
    "SyncGroup",
    "qualify",
    "source_of",
]

log = logging.getLogger(__name__)

SEPARATOR = "/"
Item = Folder | TagInfo


def source_of(name: str) -> str:
    """The source a qualified tag name (or alarm id) belongs to."""
    return name.split(SEPARATOR, 1)[0]


class QualifiedClient:
    """One station's client, speaking qualified names: `<source>/<tag>`, folders below (<source>,)."""

    def __init__(self, name: str, inner: WinCCClient) -> None:
        self.name = name
        self.prefix = name + SEPARATOR
        self.inner = inner
        self.dialect = inner.dialect

    def strip(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name

    async def __aenter__(self) -> QualifiedClient:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        yield Folder(path=(self.name,))
        async for item in self.inner.browse():
            if isinstance(item, Folder):
                yield Folder(path=(self.name, *item.path))
            else:
                yield dataclasses.replace(
                    item,
                    name=self.prefix + item.name,
                    folder=(self.name, *item.folder),
                    display_name=display_segment(item),
                )

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        answer = await self.inner.read([self.strip(n) for n in names])
        prefix = self.prefix
        # re-keyed, not rebuilt: the sync engine relies on WinCC's unchanged answers being the same objects
        return {prefix + name: result for name, result in answer.items()}

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        answer = await self.inner.write({self.strip(n): v for n, v in items.items()})
        return {self.prefix + n: dataclasses.replace(r, name=self.prefix + r.name) for n, r in answer.items()}

    def _alarm(self, alarm: Alarm) -> Alarm:
        tag = self.prefix + alarm.tag if alarm.tag else alarm.tag
        return dataclasses.replace(alarm, id=self.prefix + alarm.id, tag=tag)

    async def active_alarms(self) -> list[Alarm]:
        return [self._alarm(a) for a in await self.inner.active_alarms()]

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        await self.inner.acknowledge(self.strip(alarm_id), comment, user)

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        return [self._alarm(a) for a in await self.inner.alarm_history(start, end, limit)]

    def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        if isinstance(tag, TagInfo):
            tag = dataclasses.replace(tag, name=self.strip(tag.name), folder=tag.folder[1:])
        else:
            tag = self.strip(tag)
        return self.inner.archive(tag, start, end, page_size)


class _QualifiedPush:
    """A station's value push (unified) in qualified names."""

    def __init__(self, client: QualifiedClient, inner: ValuePush) -> None:
        self._client = client
        self._inner = inner

    @property
    def covered(self) -> frozenset[str]:
        prefix = self._client.prefix
        return frozenset(prefix + name for name in self._inner.covered)

    @property
    def covered_count(self) -> int:
        return self._inner.covered_count

    def covers(self, name: str) -> bool:
        prefix = self._client.prefix
        return name.startswith(prefix) and self._inner.covers(name[len(prefix) :])

    def want(self, names: Iterable[str]) -> None:
        self._inner.want([self._client.strip(n) for n in names])

    def start(self) -> None:
        self._inner.start()

    async def aclose(self) -> None:
        await self._inner.aclose()


class QualifiedPushingClient(QualifiedClient):
    """QualifiedClient of a station that pushes value changes (unified): the sync engine's push works through it."""

    inner: PushingClient  # type: ignore[assignment]

    def open_push(
        self,
        on_values: Callable[[dict[str, TagValue | TagError]], Awaitable[None]],
        on_covered_changed: Callable[[], None],
    ) -> ValuePush:
        prefix = self.prefix

        async def qualified(values: dict[str, TagValue | TagError]) -> None:
            await on_values({prefix + name: value for name, value in values.items()})

        return _QualifiedPush(self, self.inner.open_push(qualified, on_covered_changed))

    def open_alarm_push(
        self, on_alarms: Callable[[AlarmNews], Awaitable[None]], on_live_changed: Callable[[], None]
    ) -> AlarmPush:
        """The station's alarm push (unified) with qualified alarm ids and tags."""
        prefix = self.prefix

        async def qualified(news: AlarmNews) -> None:
            alarms = [self._alarm(a) for a in news.alarms]
            await on_alarms(AlarmNews(alarms, [prefix + i for i in news.gone], news.complete))

        return cast(AlarmPushingClient, self.inner).open_alarm_push(qualified, on_live_changed)


def qualify(name: str, inner: WinCCClient) -> QualifiedClient:
    """The station's client in qualified names; pushing stays available where the dialect pushes."""
    return QualifiedPushingClient(name, inner) if isinstance(inner, PushingClient) else QualifiedClient(name, inner)


class SourceRouter:
    """The WinCCClient the shared services (writes, history, alarms) use with several sources: each request goes
    to the station its names belong to; one station failing fails only its own names."""

    dialect = "sources"

    def __init__(self, clients: Iterable[QualifiedClient]) -> None:
        self._clients = {c.name: c for c in clients}
        self._last_alarms: dict[str, list[Alarm]] = {}  # station -> its last answer (see active_alarms)

    def _client(self, name: str) -> QualifiedClient:
        client = self._clients.get(source_of(name))
        if client is None:
            raise WinCCError(f"no source {source_of(name)!r} for {name!r}")
        return client

    def _by_source(self, names: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in names:
            out.setdefault(source_of(name), []).append(name)
        return out

    async def __aenter__(self) -> SourceRouter:
        for client in self._clients.values():
            await client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients.values()), return_exceptions=True)

    async def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        for client in self._clients.values():
            async for item in client.browse():
                yield item

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        groups = [(self._clients.get(s), n) for s, n in self._by_source(names).items()]
        answers = await asyncio.gather(
            *(c.read(n) if c is not None else _no_source(n) for c, n in groups), return_exceptions=True
        )
        out: dict[str, TagValue | TagError] = {}
        errors: list[BaseException] = []
        for (_, group), answer in zip(groups, answers, strict=True):
            if isinstance(answer, WinCCError):
                errors.append(answer)
                out.update({n: TagError(n, str(answer), TagErrorKind.bad_answer) for n in group})
            elif isinstance(answer, BaseException):
                raise answer
            else:
                out.update(answer)
        if errors and len(errors) == len(groups):
            raise errors[0]
        return out

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        groups = self._by_source(items)
        answers = await asyncio.gather(*(self._client(n[0]).write({k: items[k] for k in n}) for n in groups.values()))
        return {k: v for answer in answers for k, v in answer.items()}

    async def _each(self, call: Callable[[QualifiedClient], Any]) -> dict[str, list[Alarm] | WinCCError]:
        """Each station's alarms, or its WinCCError; any other exception is a bug and raised."""
        answers = await asyncio.gather(*(call(c) for c in self._clients.values()), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, WinCCError):
                raise answer
        return dict(zip(self._clients, cast(list[list[Alarm] | WinCCError], answers), strict=True))

    async def active_alarms(self) -> list[Alarm]:
        """Every station's active alarms. A station that does not answer contributes the alarms it had at its
        last answer, so a consumer that reconciles against this list (the alarm service) neither retires the
        conditions of a station that is only unreachable nor holds back the others' news; its tags show the
        outage (Bad) and so do ServiceLevel and its BridgeStatus. Raises only when no station answers."""
        answers = await self._each(lambda c: c.active_alarms())
        failed = [a for a in answers.values() if isinstance(a, WinCCError)]
        if len(failed) == len(answers):
            raise failed[0]
        out: list[Alarm] = []
        for source, answer in answers.items():
            if isinstance(answer, WinCCError):
                out += self._last_alarms.get(source, [])
            else:
                self._last_alarms[source] = answer
                out += answer
        return out

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        await self._client(alarm_id).acknowledge(alarm_id, comment, user)

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        """The history of every station that answers (raises only when none does), oldest first."""
        answers = await self._each(lambda c: c.alarm_history(start, end, limit))
        found = [a for a in answers.values() if not isinstance(a, WinCCError)]
        if not found:
            raise next(a for a in answers.values() if isinstance(a, WinCCError))
        return sorted((alarm for answer in found for alarm in answer), key=lambda a: a.timestamp)[:limit]

    def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        return self._client(tag.name if isinstance(tag, TagInfo) else tag).archive(tag, start, end, page_size)


async def _no_source(names: Sequence[str]) -> dict[str, TagValue | TagError]:
    return {n: TagError(n, "no such source", TagErrorKind.not_found) for n in names}


class Source:
    """One WinCC station: its client, its model (the last browse), its snapshot file and its sync engine."""

    def __init__(self, config: WinCCConfig, client: WinCCClient, *, qualified: bool) -> None:
        self.config = config
        self.name = config.name or ""
        self.prefix = self.name + SEPARATOR if qualified else ""
        self.client: WinCCClient = qualify(self.name, client) if qualified else client
        self.snapshot = _snapshot_path(config.browse_snapshot, self.name if qualified else "")
        # a station's folder exists from the start, even before its first browse answers
        self.items: list[Item] = [Folder(path=(self.name,))] if qualified else []
        self.built = False  # a fresh browse was applied (not only a snapshot)
        self.sync: SyncEngine | None = None

    @property
    def label(self) -> str:
        return f"source {self.name}" if self.prefix else "WinCC"

    @property
    def has_model(self) -> bool:
        """A browse or a snapshot gave this source something to serve (more than its own empty folder)."""
        return len(self.items) > (1 if self.prefix else 0)

    @property
    def reachable(self) -> bool:
        """WinCC answered this source's last poll (or its last browse, while it has no tags to poll)."""
        if self.sync is not None and any(isinstance(i, TagInfo) for i in self.items):
            return self.sync.connected
        return self.built


def _snapshot_path(configured: Path | None, name: str) -> Path | None:
    """Each source keeps its own snapshot: nodesets/last-browse.xml -> nodesets/last-browse.<source>.xml."""
    if configured is None or not name:
        return configured
    path = Path(configured)
    return path.with_name(f"{path.stem}.{name}{path.suffix}")


class SyncGroup:
    """The sync engines of several sources, as the services that take one engine see them (reads, writes)."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self._sources = sources

    def _engine(self, source: str) -> SyncEngine | None:
        return next((s.sync for s in self._sources if s.name == source), None)

    @property
    def engines(self) -> list[SyncEngine]:
        return [s.sync for s in self._sources if s.sync is not None]

    @property
    def connected(self) -> bool:
        return all(s.reachable for s in self._sources)

    def note_read(self, names: Iterable[str]) -> None:
        by_source: dict[str, list[str]] = {}
        for name in names:
            by_source.setdefault(source_of(name), []).append(name)
        for source, group in by_source.items():
            engine = self._engine(source)
            if engine is not None:
                engine.note_read(group)

    def age_s(self, name: str) -> float:
        engine = self._engine(source_of(name))
        return engine.age_s(name) if engine is not None else math.inf

    async def read_now(self, names: Sequence[str], wait_s: float) -> None:
        """Each source reads its own tags (SyncEngine.read_now), all at once, within the same wait."""
        by_source: dict[str, list[str]] = {}
        for name in names:
            by_source.setdefault(source_of(name), []).append(name)
        engines = [(e, group) for source, group in by_source.items() if (e := self._engine(source)) is not None]
        await asyncio.gather(*(engine.read_now(group, wait_s) for engine, group in engines))

    def note_written(self, name: str, value: Any) -> None:
        engine = self._engine(source_of(name))
        if engine is not None:
            engine.note_written(name, value)

    def tags_changed(self, added: Sequence[str], removed: Sequence[str]) -> None:
        for engine in self.engines:  # each engine keeps only its own source's names (its directory view)
            engine.tags_changed(added, removed)

    def metrics(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for engine in self.engines:
            for key, value in engine.metrics().items():
                total[key] = max(total.get(key, 0.0), value) if key == "poll_cycle_ms" else total.get(key, 0.0) + value
        return total


class DemandFanOut:
    """asyncua tells one observer about monitored items; with several engines each Demand hears every change and
    keeps the items on its own source's tags (the others do not find the node in their directory view)."""

    def __init__(self, demands: Sequence[Demand]) -> None:
        self._demands = demands

    def items_created(
        self, params: ua.CreateMonitoredItemsParameters, results: list[ua.MonitoredItemCreateResult]
    ) -> None:
        for demand in self._demands:
            demand.items_created(params, results)

    def items_modified(
        self, params: ua.ModifyMonitoredItemsParameters, results: list[ua.MonitoredItemModifyResult]
    ) -> None:
        for demand in self._demands:
            demand.items_modified(params, results)

    def items_deleted(self, subscription_id: int, item_ids: list[int]) -> None:
        for demand in self._demands:
            demand.items_deleted(subscription_id, item_ids)

    def subscriptions_deleted(self, subscription_ids: list[int]) -> None:
        for demand in self._demands:
            demand.subscriptions_deleted(subscription_ids)
