"""One running bridge: the asyncua server and every service wired to it, started and stopped in order.

Start-up never depends on WinCC being reachable: if the first browse fails, the address space comes from the
NodeSet snapshot of the last good browse (values BadWaitingForInitialData), or starts empty, and a background
task keeps browsing with backoff until WinCC answers. The OPC UA endpoint is up either way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from asyncua import Server

from bridge.config import BridgeConfig
from bridge.opcua._asyncua import bind_condition_refresh
from bridge.runtime.health import HealthServer, HealthSnapshot
from bridge.runtime.loop_lag import LoopLag
from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.bridge_status import BridgeStatus
from bridge.opcua.services.browse import BrowseService
from bridge.opcua.services.calls import CallService
from bridge.opcua.history.service import HistoryService
from bridge.opcua.model.nodeset import read_nodeset, write_nodeset
from bridge.opcua.services.reads import ReadService
from bridge.opcua.security.policies import apply_security, endpoint_urls
from bridge.opcua.services.session import BridgeInternalServer
from bridge.opcua.sync.engine import SyncEngine
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.security.user_manager import BridgeUserManager
from bridge.opcua.services.writes import WriteRouter
from bridge.wincc.client import WinCCClient, open_client
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Folder, TagInfo

__all__ = ["Bridge", "serve"]

log = logging.getLogger(__name__)

Model = Sequence[Folder | TagInfo]


class Bridge:
    """Owns the server, the REST client and the services for one config. `start()` then `stop()`, once each."""

    def __init__(self, config: BridgeConfig, on_secret: Callable[[str], None] | None = None) -> None:
        """`on_secret` is told every credential the REST client handles (password, login tokens), so the log
        redaction knows them before anything could print them."""
        self.config = config
        iserver = BridgeInternalServer(user_manager=BridgeUserManager(config.opcua))
        bind_condition_refresh(iserver)  # before init(): A&C builds on ConditionRefresh
        self.server = Server(iserver=iserver)
        self.iserver = iserver
        self.client: WinCCClient = open_client(config.wincc, batch_size=config.sync.batch_size, on_secret=on_secret)
        self.directory: TagDirectory | None = None
        self.address_space: AddressSpace | None = None
        self.sync: SyncEngine | None = None
        self.status: BridgeStatus | None = None
        self.health: HealthServer | None = None
        self.loop_lag = LoopLag()
        self._serving = False
        self._built = False
        self._tasks: list[asyncio.Task[None]] = []

    # ---- start / stop ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        self.loop_lag.start()
        bind_url, public_url = endpoint_urls(cfg.opcua)
        self.server.set_server_name(cfg.opcua.server_name)
        self.server.set_endpoint(bind_url)
        await self.server.init()
        await apply_security(self.server, cfg.opcua)

        tag_ns = await self.server.register_namespace(cfg.opcua.namespace_uri)
        folder_ns = await self.server.register_namespace(cfg.opcua.namespace_uri + "/folders")
        bridge_ns = await self.server.register_namespace(cfg.opcua.namespace_uri + "/bridge")
        self.directory = TagDirectory(tag_ns, folder_ns, bridge_ns)
        self.address_space = AddressSpace(
            self.server, self.directory, minimum_sampling_interval_ms=float(min(cfg.sync.poll_groups_ms + [cfg.sync.interval_ms]))
        )

        await self.client.__aenter__()
        model, fresh = await self._first_model()
        await self.address_space.build(model)
        self._built = fresh or bool(model)

        self.status = await BridgeStatus.create(self.server, self.address_space.root_node_id, bridge_ns)
        self.sync = SyncEngine(self.server, self.directory, self.client, cfg.sync, status=self.status)

        browse = BrowseService(self.server, max_references_per_node=cfg.opcua.max_references_per_node)
        history = HistoryService(self.server, self.directory, self.client, cfg.history)
        if cfg.history.enabled:
            await history.setup()
        writes = WriteRouter(
            self.server, self.directory, self.client, cfg.opcua,
            on_written=self.sync.note_written, timeout_s=cfg.wincc.timeouts.write_s,
        )
        handlers = self.iserver.handlers
        handlers.read = ReadService(self.server, self.directory, self.sync).read
        handlers.write = writes.write
        handlers.history_read = history.read
        handlers.browse = browse.browse
        handlers.browse_next = browse.browse_next
        handlers.call = CallService(self.server, bridge_ns).call
        handlers.on_close += [browse.release, history.release]

        await self.sync.start()
        await self.server.start()
        self._serving = True
        log.info("OPC UA endpoint %s (bound %s), %d tags", public_url, bind_url, len(self.directory))

        if not fresh:
            self._tasks.append(asyncio.create_task(self._browse_until_built(), name="first-browse"))
        if cfg.wincc.rebrowse_s > 0:
            self._tasks.append(asyncio.create_task(self._rebrowse_forever(), name="rebrowse"))
        if cfg.health.listen:
            self.health = HealthServer(cfg.health.listen, self.snapshot)
            await self.health.start()

    async def stop(self) -> None:
        self._serving = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.health is not None:
            await self.health.stop()
        await self.loop_lag.stop()
        if self.sync is not None:
            await self.sync.stop()
        try:
            await self.server.stop()
        except Exception:  # a server that failed half-way through start still has to release the rest
            log.debug("server stop", exc_info=True)
        await self.client.aclose()
        log.info("bridge stopped")

    # ---- model: browse, snapshot, re-browse ---------------------------------------------------------------
    async def _browse(self) -> list[Folder | TagInfo]:
        started = time.monotonic()
        items = [item async for item in self.client.browse()]
        tags = sum(isinstance(i, TagInfo) for i in items)
        log.info("browsed WinCC: %d tags, %d folders in %.1f s", tags, len(items) - tags, time.monotonic() - started)
        self._save_snapshot(items)
        return items

    def _save_snapshot(self, items: Model) -> None:
        path = self.config.wincc.browse_snapshot
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            write_nodeset(items, tmp, self.config.opcua.namespace_uri)
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot write browse snapshot %s: %s", path, exc)

    async def _first_model(self) -> tuple[list[Folder | TagInfo], bool]:
        """The model to build at start, and whether it is a fresh browse (not a snapshot or nothing)."""
        try:
            return await self._browse(), True
        except WinCCError as exc:
            log.warning("WinCC browse failed at start: %s", exc)
        path = self.config.wincc.browse_snapshot
        if path is not None and Path(path).is_file():
            try:
                items = read_nodeset(Path(path))
            except (OSError, ValueError) as exc:
                log.warning("cannot read browse snapshot %s: %s", path, exc)
            else:
                log.info("serving %d nodes from the snapshot %s until WinCC answers", len(items), path)
                return items, False
        log.warning("no model yet: serving an empty address space and browsing WinCC again in the background")
        return [], False

    async def _apply_model(self, items: Model) -> None:
        assert self.address_space is not None and self.sync is not None
        added, removed = await self.address_space.update(items)
        if added or removed:
            log.info("model changed: %d tags added, %d removed", len(added), len(removed))
            self.sync.tags_changed(added, removed)

    async def _browse_until_built(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                items = await self._browse()
            except WinCCError as exc:
                log.info("WinCC browse still failing: %s", exc)
                delay = min(delay * 2, self.config.sync.max_backoff_s)
                continue
            await self._apply_model(items)
            self._built = True
            return

    async def _rebrowse_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.wincc.rebrowse_s)
            try:
                items = await self._browse()
            except WinCCError as exc:
                log.warning("re-browse failed, keeping the current model: %s", exc)
                continue
            await self._apply_model(items)
            self._built = True

    # ---- health ----------------------------------------------------------------------------------------------
    def snapshot(self) -> HealthSnapshot:
        sync = self.sync
        metrics = sync.metrics() if sync is not None else {}
        metrics.update(self.loop_lag.metrics())
        return HealthSnapshot(
            serving=self._serving,
            address_space_built=self._built,
            wincc_connected=bool(sync and sync.connected),
            tags=len(self.directory) if self.directory is not None else 0,
            gauges={k: v for k, v in metrics.items() if not k.endswith("_total")},
            counters={k.removesuffix("_total"): v for k, v in metrics.items() if k.endswith("_total")},
        )


async def serve(config: BridgeConfig, stop: asyncio.Event, on_secret: Callable[[str], None] | None = None) -> None:
    """Run a bridge until `stop` is set, then shut it down cleanly."""
    bridge = Bridge(config, on_secret=on_secret)
    try:
        await bridge.start()
        await stop.wait()
    finally:
        await bridge.stop()
