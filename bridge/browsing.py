"""Each WinCC station's model (its folders and tags) over the bridge's life: the first browse at start, else the
NodeSet snapshot of the last good browse, else nothing yet; browsing again with backoff until the station answers;
re-browsing every `wincc.rebrowse_s`. Start-up never depends on WinCC being reachable (see bridge/app.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bridge.opcua.model.nodeset import read_nodeset, write_nodeset
from bridge.runtime.backoff import Backoff
from bridge.runtime.gc_policy import paused
from bridge.sources import Source
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Folder, TagInfo

__all__ = ["SourceModels"]

# the model's lines keep the logger name they always had (operators' filters and the log tests know them by it)
log = logging.getLogger("bridge.app")
_YIELD_EVERY = 2000  # browsed items made between two turns of the event loop

Model = Sequence[Folder | TagInfo]


class SourceModels:
    """The models of `sources`; `on_browsed` is awaited after a browse in the background changed what is served
    (the caller applies the union to the address space)."""

    def __init__(
        self,
        sources: Sequence[Source],
        namespace_uri: str,
        max_backoff_s: float,
        on_browsed: Callable[[], Awaitable[None]],
    ) -> None:
        self._sources = sources
        self._namespace_uri = namespace_uri
        self._max_backoff_s = max_backoff_s
        self._on_browsed = on_browsed

    def union(self) -> list[Folder | TagInfo]:
        """The union of every source's current model (sources never share a name: their prefixes differ)."""
        return [item for source in self._sources for item in source.items]

    async def first(self, source: Source) -> bool:
        """Give `source` its model at start: a fresh browse, else its snapshot, else nothing. True if fresh."""
        try:
            await self.browse(source)
            source.built = True
            return True
        except WinCCError as exc:
            log.warning("%s browse failed at start: %s", source.label, exc)
        path = source.snapshot
        if path is not None:
            # a big snapshot takes a while to parse: not on the event loop (the other sources browse meanwhile)
            items = await asyncio.to_thread(_read_snapshot, Path(path))
            if items is not None:
                source.items = items
                log.info(
                    "serving %d nodes from the snapshot %s until %s answers", len(source.items), path, source.label
                )
                return False
        log.warning("%s: no model yet: serving it empty and browsing again in the background", source.label)
        return False

    async def browse(self, source: Source) -> list[Folder | TagInfo]:
        started = time.monotonic()
        items: list[Folder | TagInfo] = []
        with paused():  # a model is long-lived objects only (bridge/runtime/gc_policy.py)
            async for item in source.client.browse():
                items.append(item)
                if len(items) % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # 100,000 tags were one 1.2-1.5 s step (a re-browse serves clients)
        tags = sum(isinstance(i, TagInfo) for i in items)
        log.info(
            "browsed %s: %d tags, %d folders in %.1f s",
            source.label,
            tags,
            len(items) - tags,
            time.monotonic() - started,
        )
        self._save_snapshot(source.snapshot, items)
        source.items = items
        return items

    def _save_snapshot(self, path: Path | None, items: Model) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            write_nodeset(items, tmp, self._namespace_uri)
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot write browse snapshot %s: %s", path, exc)

    async def until_built(self, source: Source) -> None:
        """Browse `source` with backoff until it answers once (it started from its snapshot, or empty)."""
        backoff = Backoff(base_s=1.0, cap_s=self._max_backoff_s)
        while True:
            await asyncio.sleep(backoff.next())
            try:
                await self.browse(source)
            except WinCCError as exc:
                log.info("%s browse still failing: %s", source.label, exc)
                continue
            await self._on_browsed()
            source.built = True
            return

    async def rebrowse_forever(self, source: Source) -> None:
        while True:
            await asyncio.sleep(source.config.rebrowse_s)
            try:
                await self.browse(source)
            except WinCCError as exc:
                log.warning("%s re-browse failed, keeping the current model: %s", source.label, exc)
                continue
            await self._on_browsed()
            source.built = True


def _read_snapshot(path: Path) -> list[Folder | TagInfo] | None:
    if not path.is_file():
        return None
    try:
        return read_nodeset(path)
    except (OSError, ValueError) as exc:
        log.warning("cannot read browse snapshot %s: %s", path, exc)
        return None
