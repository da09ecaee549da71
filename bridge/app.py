"""One running bridge: the asyncua server and every service wired to it, started and stopped in order.

Start-up never depends on WinCC being reachable: if the first browse fails, the address space comes from the
NodeSet snapshot of the last good browse (values BadWaitingForInitialData), or starts empty, and a background
task keeps browsing with backoff until WinCC answers. The OPC UA endpoint is up either way.

Each WinCC station is a `Source` (bridge/sources.py) with its own REST client, model, snapshot and sync engine; the
single `wincc:` form is one source whose names are not qualified. The address space is built from the union of
every source's model (bridge/browsing.py keeps them), and Server/ServiceLevel follows the share of sources that
answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from asyncua import Server, ua

from bridge.browsing import SourceModels
from bridge.config import BridgeConfig, ConfigError, load_config
from bridge.opcua._asyncua import ConnectionGuard, bind_condition_refresh, install_connection_guard
from bridge.opcua.alarms.methods import ConditionMethods
from bridge.opcua.alarms.service import AlarmService
from bridge.opcua.alarms.wiring import install as install_alarms
from bridge.opcua.history.service import HistoryService
from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.bridge_status import BridgeStatus, load_types
from bridge.opcua.model.server_object import set_auditing, set_build_info, set_redundancy
from bridge.opcua.model.service_level import service_level
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.security.policies import apply_security, apply_trust, endpoint_urls
from bridge.opcua.security.user_manager import BridgeUserManager
from bridge.opcua.services.audit import AuditEvents
from bridge.opcua.services.browse import BrowseService
from bridge.opcua.services.calls import CallService
from bridge.opcua.services.diagnostics import DiagnosticsPublisher
from bridge.opcua.services.reads import ReadService
from bridge.opcua.services.session import BridgeInternalServer
from bridge.opcua.services.writes import WriteRouter
from bridge.opcua.sync.engine import SyncEngine
from bridge.runtime.clock import sleep_to_tick
from bridge.runtime.gc_policy import young_generation
from bridge.runtime.health import HealthServer, HealthSnapshot
from bridge.runtime.logs import set_log_level
from bridge.runtime.loop_lag import LoopLag
from bridge.runtime.ports import PortInUse, ensure_free, is_in_use_error
from bridge.runtime.reload import RELOADABLE, restart_needed
from bridge.sources import DemandFanOut, QualifiedClient, Source, SourceRouter, SyncGroup
from bridge.wincc.client import WinCCClient, open_client

__all__ = ["Bridge", "serve"]

log = logging.getLogger(__name__)

_SERVICE_LEVEL = ua.NodeId(ua.ObjectIds.Server_ServiceLevel)


class Bridge:
    """Owns the server, the REST client and the services for one config. `start()` then `stop()`, once each."""

    def __init__(
        self, config: BridgeConfig, on_secret: Callable[[str], None] | None = None, config_path: Path | None = None
    ) -> None:
        """`on_secret` is told every credential the REST client handles (password, login tokens), so the log
        redaction knows them before anything could print them. `config_path`: the file `reload()` re-reads."""
        self.config = config
        self.config_path = config_path
        self._command_line_level = logging.getLevelName(logging.getLogger().level).lower()
        self.user_manager = BridgeUserManager(config.opcua)
        iserver = BridgeInternalServer(user_manager=self.user_manager)
        bind_condition_refresh(iserver)  # before init(): A&C builds on ConditionRefresh
        # a vanished client's session keeps its subscriptions until this timeout (Part 4, 6.7)
        iserver.max_session_timeout_ms = config.opcua.max_session_timeout_s * 1000
        self.server = Server(iserver=iserver)
        self.iserver = iserver
        qualified = bool(config.sources)
        self.sources = [
            Source(
                station,
                open_client(station, batch_size=config.sync.batch_size, on_secret=on_secret),
                qualified=qualified,
            )
            for station in config.stations()
        ]
        # what writes, history and alarms talk to: the one client, or a router to each tag's own source
        self.client: WinCCClient = (
            SourceRouter(c for s in self.sources if isinstance(c := s.client, QualifiedClient))
            if qualified
            else self.sources[0].client
        )
        self.models = SourceModels(
            self.sources, config.opcua.namespace_uri, config.sync.max_backoff_s, on_browsed=self._model_browsed
        )
        self.directory: TagDirectory | None = None
        self.address_space: AddressSpace | None = None
        self.sync: SyncEngine | SyncGroup | None = None
        self.status: BridgeStatus | None = None
        self.health: HealthServer | None = None
        self.writes: WriteRouter | None = None
        self.alarms: AlarmService | None = None
        self.condition_methods: ConditionMethods | None = None
        self.loop_lag = LoopLag()
        lim = config.opcua.limits
        self.connections = ConnectionGuard(
            lim.hello_timeout_s, lim.activation_timeout_s, lim.max_connections, lim.max_connections_per_address
        )
        self._serving = False
        self._built = False
        self._tasks: list[asyncio.Task[None]] = []

    # ---- start / stop ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        if cfg.log.level:
            set_log_level(cfg.log.level)
        bind_url, public_url = endpoint_urls(cfg.opcua)
        bind = urlsplit(bind_url)
        # before the browse, which can take a while: a taken port is the first thing the operator hears of
        ensure_free(bind.hostname or "0.0.0.0", bind.port or 4840, "OPC UA", "opcua.endpoint")
        if cfg.health.listen:
            host, _, port = cfg.health.listen.rpartition(":")
            ensure_free(host.strip("[]") or "0.0.0.0", int(port), "health", "health.listen")
        self.loop_lag.start()
        await self._init_server(bind_url, public_url)
        bridge_ns, fresh = await self._build_address_space()
        self.sync = sync = await self._sync_engines(bridge_ns)
        await self._install_services(bridge_ns, sync)
        for source in self.sources:
            assert source.sync is not None
            await source.sync.start()
        if isinstance(sync, SyncGroup):  # each engine installed its own observer: all of them hear every item
            self.iserver.handlers.subscriptions = DemandFanOut([e.demand for e in sync.engines])
        lim = cfg.opcua.limits
        install_connection_guard(self.server, self.connections, lim.max_chunk_size, lim.max_message_size)
        if self.alarms is not None:
            await self.alarms.start()
        try:
            await self.server.start()
        except OSError as exc:  # taken since the check above
            if not is_in_use_error(exc):
                raise
            raise PortInUse("OPC UA", bind.hostname or "0.0.0.0", bind.port or 4840, "opcua.endpoint") from None
        self._serving = True
        assert self.directory is not None
        log.info("OPC UA endpoint %s (bound %s), %d tags", public_url, bind_url, len(self.directory))
        await self._start_background(fresh)

    async def _init_server(self, bind_url: str, public_url: str) -> None:
        """asyncua's server with the standard nodes the bridge fills in (security, build info, redundancy,
        diagnostics)."""
        cfg = self.config
        self.server.set_server_name(cfg.opcua.server_name)
        self.server.set_endpoint(bind_url)
        await self.server.init()
        await apply_security(self.server, cfg.opcua)
        await set_build_info(self.server, cfg.opcua.server_name)
        await set_auditing(self.server)
        await set_redundancy(self.server, cfg.opcua.redundancy, cfg.opcua.application_uri)
        self.diagnostics = DiagnosticsPublisher(
            self.server, self.iserver.counters, self.iserver.live_sessions, public_url
        )
        await self.diagnostics.setup()

    async def _build_address_space(self) -> tuple[int, list[bool]]:
        """The namespaces, every source's first model built into the address space, and BridgeStatus. Returns the
        bridge's namespace index and, per source, whether its model is a fresh browse."""
        cfg = self.config
        tag_ns = await self.server.register_namespace(cfg.opcua.namespace_uri)
        folder_ns = await self.server.register_namespace(cfg.opcua.namespace_uri + "/folders")
        bridge_ns = await self.server.register_namespace(cfg.opcua.namespace_uri + "/bridge")
        self.directory = TagDirectory(tag_ns, folder_ns, bridge_ns)
        self.address_space = AddressSpace(
            self.server,
            self.directory,
            minimum_sampling_interval_ms=float(min(cfg.sync.poll_groups_ms + [cfg.sync.interval_ms])),
        )
        for source in self.sources:
            await source.client.__aenter__()
        fresh = list(await asyncio.gather(*(self.models.first(s) for s in self.sources)))
        await self.address_space.build(self.models.union())
        self._built = all(fresh) or any(s.has_model for s in self.sources)

        await load_types(self.server)
        self.status = await BridgeStatus.create(self.server, self.address_space.root_node_id, bridge_ns)
        await self.server.get_node(ua.NodeId("BridgeStatus", bridge_ns)).add_method(
            ua.NodeId("BridgeStatus.Reload", bridge_ns),
            ua.QualifiedName("Reload", bridge_ns),
            self._reload_method,
            [],
            [ua.VariantType.String],
        )
        return bridge_ns, fresh

    async def _install_services(self, bridge_ns: int, sync: SyncEngine | SyncGroup) -> None:
        """Browse, Read, Write, HistoryRead, Call and (when enabled) Alarms & Conditions, wired to the sessions."""
        cfg = self.config
        assert self.directory is not None and self.address_space is not None
        browse = BrowseService(self.server, max_references_per_node=cfg.opcua.max_references_per_node)
        history = HistoryService(self.server, self.directory, self.client, cfg.history)
        if cfg.history.enabled:
            await history.setup()
        audit = AuditEvents(self.server, cfg.opcua.application_uri)
        writes = self.writes = WriteRouter(
            self.server,
            self.directory,
            self.client,
            cfg.opcua,
            on_written=sync.note_written,
            timeout_s=max(s.config.timeouts.write_s for s in self.sources),
            audit=audit,
        )
        await writes.advertise_limits()
        handlers = self.iserver.handlers
        reads = ReadService(self.server, self.directory, sync, cfg.sync.max_age_wait_ms)
        handlers.read = reads.read
        handlers.write = writes.write
        handlers.history_read = history.read
        handlers.browse = browse.browse
        handlers.browse_next = browse.browse_next
        calls = CallService(self.server, bridge_ns)
        handlers.call = calls.call
        handlers.on_close += [browse.release, history.release]
        if cfg.alarms.enabled:
            self.alarms, self.condition_methods = await install_alarms(
                self.server,
                self.directory,
                self.client,
                cfg,
                self.address_space.root_node_id,
                history,
                calls,
                handlers,
                feeds=[(s.prefix, s.client) for s in self.sources],
                audit=audit,
            )

    async def _start_background(self, fresh: list[bool]) -> None:
        """What runs while serving: browsing sources that have no fresh model yet, re-browsing, ServiceLevel,
        diagnostics, and the health endpoint."""
        for source, browsed in zip(self.sources, fresh, strict=True):
            if not browsed:
                self._tasks.append(asyncio.create_task(self.models.until_built(source), name="first-browse"))
            if source.config.rebrowse_s > 0:
                self._tasks.append(asyncio.create_task(self.models.rebrowse_forever(source), name="rebrowse"))
        self._tasks.append(asyncio.create_task(self._service_level_forever(), name="service-level"))
        self._tasks.append(asyncio.create_task(self._diagnostics_forever(), name="diagnostics"))
        if self.config.health.listen:
            self.health = HealthServer(self.config.health.listen, self.snapshot)
            await self.health.start()

    async def _sync_engines(self, bridge_ns: int) -> SyncEngine | SyncGroup:
        """One sync engine per source, each polling its own tags (a view of the directory). With several stations
        each has its own BridgeStatus in its folder; the top one sums them up (see _service_level_forever)."""
        assert self.directory is not None
        single = not self.config.sources
        for source in self.sources:
            status = (
                self.status
                if single
                else await BridgeStatus.create(
                    self.server, self.directory.folder_node_id((source.name,)), bridge_ns, prefix=source.prefix
                )
            )
            source.sync = SyncEngine(
                self.server,
                self.directory.only(source.prefix),
                source.client,
                self.config.sync,
                status=status,
                read_timeout_s=source.config.timeouts.read_s,
            )
        sync = self.sources[0].sync if single else SyncGroup(self.sources)
        assert sync is not None
        return sync

    async def stop(self) -> None:
        was_serving, self._serving = self._serving, False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.health is not None:
            await self.health.stop()
        await self.loop_lag.stop()
        if self.alarms is not None:
            await self.alarms.stop()
        for source in self.sources:
            if source.sync is not None:
                await source.sync.stop()
        try:
            await self.server.stop()
        except Exception:  # a server that failed half-way through start still has to release the rest
            log.debug("server stop", exc_info=True)
        for source in self.sources:
            await source.client.aclose()
        if was_serving:  # after a failed start the one line saying why is enough
            log.info("bridge stopped")

    # ---- model (bridge/browsing.py keeps each source's) -------------------------------------------------------
    async def _apply_model(self) -> None:
        assert self.address_space is not None and self.sync is not None
        added, removed = await self.address_space.update(self.models.union())
        if added or removed:
            log.info("model changed: %d tags added, %d removed", len(added), len(removed))
            self.sync.tags_changed(added, removed)
        if self.alarms is not None and (added or removed or self.address_space.last_changed):
            self.alarms.model_changed()

    async def _model_browsed(self) -> None:
        """A source's browse in the background (the first that answered, or a re-browse) came in."""
        await self._apply_model()
        self._built = True

    async def _service_level_forever(self) -> None:
        """Server/ServiceLevel from the sources' reachability, checked twice a second (an engine notices a
        station down within one poll cycle), written only when it changes."""
        last = -1
        while True:
            reachable = [s.reachable for s in self.sources]
            level = service_level(reachable)
            try:
                if level != last:
                    await self.server.write_attribute_value(
                        _SERVICE_LEVEL, ua.DataValue(ua.Variant(level, ua.VariantType.Byte))
                    )
                    last = level
                if self.config.sources and self.status is not None:  # the top BridgeStatus sums the stations up
                    state = "connected" if all(reachable) else "degraded" if any(reachable) else "down"
                    await self.status.update(
                        Connected=all(reachable),
                        State=state,
                        TagCount=len(self.directory) if self.directory is not None else 0,
                    )
            except Exception:  # retried next turn; serving must not stop over it
                log.exception("cannot publish ServiceLevel")
            await sleep_to_tick(0.5)

    # ---- reload (SIGHUP, the Reload method) -----------------------------------------------------------------
    def reload(self) -> tuple[bool, str]:
        """Re-read the config file and apply what can change while serving (bridge/runtime/reload.py). A file
        that cannot be used changes nothing. Returns (applied, the line that was logged)."""
        path = self.config_path
        if path is None:
            return False, "reload: this bridge was not started from a config file"
        try:
            new = load_config(path)
        except ConfigError as exc:
            line = f"reload of {path} failed, the running config stays: {exc}"
            log.error("%s", line)
            return False, line
        # what `run` would refuse to start with (config warnings marked refuse_serving) is refused here too
        refused = [str(w) for w in getattr(new, "warnings", ()) if getattr(w, "refuse_serving", False)]
        if refused:
            line = f"reload of {path} refused, the running config stays: {'; '.join(refused)}"
            log.error("%s", line)
            return False, line
        restart = restart_needed(self.config, new)
        old_tokens = (bool(self.config.opcua.users), self.config.opcua.anonymous)
        if (bool(new.opcua.users), new.opcua.anonymous) != old_tokens:
            restart.append("the login types offered (users present / opcua.anonymous)")
        self.user_manager.reload(new.opcua)
        apply_trust(self.server, new.opcua)
        set_log_level(new.log.level or self._command_line_level)
        reloadable = {k.split(".", 1)[1] for k in RELOADABLE if k.startswith("opcua.")}
        self.config = self.config.model_copy(
            update={
                "opcua": self.config.opcua.model_copy(update={k: getattr(new.opcua, k) for k in reloadable}),
                "log": new.log,
            }
        )
        line = (
            f"reloaded {path}: {len(new.opcua.users)} users, write rules for {len(new.opcua.write_rules)}, "
            f"trust list {new.opcua.pki_dir}, log level {new.log.level or self._command_line_level}"
        )
        log.info("%s", line)
        if restart:
            log.warning("changed in %s but read only at start, restart to apply: %s", path, ", ".join(restart))
            line += f"; restart needed for: {', '.join(restart)}"
        return True, line

    async def _reload_method(self, parent: ua.NodeId) -> list[ua.Variant] | ua.StatusCode:
        applied, line = self.reload()
        if not applied:
            return ua.StatusCode(ua.StatusCodes.BadConfigurationError)
        return [ua.Variant(line, ua.VariantType.String)]

    # ---- standard server nodes ------------------------------------------------------------------------------
    async def _diagnostics_forever(self) -> None:
        """The diagnostics counters (services/diagnostics.py), published once a second."""
        while True:
            try:
                await self.diagnostics.publish()
            except Exception:  # a bug here must not stop the next update
                log.exception("publishing server diagnostics failed")
            await sleep_to_tick(1.0)

    # ---- health ----------------------------------------------------------------------------------------------
    def snapshot(self) -> HealthSnapshot:
        sync = self.sync
        metrics = sync.metrics() if sync is not None else {}
        metrics.update(self.loop_lag.metrics())
        metrics["service_level"] = float(service_level([s.reachable for s in self.sources]))
        if self.config.sources:  # one gauge per station: which of them is down
            metrics.update(
                {f"source_{re.sub(r'[^A-Za-z0-9_]', '_', s.name)}_reachable": float(s.reachable) for s in self.sources}
            )
        metrics.update(self.connections.metrics())
        labelled: dict[str, tuple[str, dict[str, float]]] = {}
        if self.alarms is not None and self.condition_methods is not None:
            metrics.update(self.alarms.metrics())
            labelled["alarm_acknowledges"] = ("result", dict(self.condition_methods.acknowledges))
        if self.writes is not None:  # what clients wrote, by StatusCode (values_updated: what polling stored)
            labelled["client_writes"] = ("result", dict(self.writes.results))
        metrics["event_loop_tasks"] = float(len(asyncio.all_tasks()))  # a leak shows as growth here
        return HealthSnapshot(
            serving=self._serving,
            address_space_built=self._built,
            wincc_connected=bool(sync and sync.connected),  # with several sources: every one of them
            tags=len(self.directory) if self.directory is not None else 0,
            gauges={k: v for k, v in metrics.items() if not k.endswith("_total")},
            counters={k.removesuffix("_total"): v for k, v in metrics.items() if k.endswith("_total")},
            labelled_counters=labelled,
        )


async def serve(
    config: BridgeConfig,
    stop: asyncio.Event,
    on_secret: Callable[[str], None] | None = None,
    config_path: Path | None = None,
    on_started: Callable[[Bridge], None] | None = None,
) -> None:
    """Run a bridge until `stop` is set, then shut it down cleanly. With `config_path`, SIGHUP reloads it.
    `on_started` is called once the endpoint is bound, the address space built and the health endpoint up (the
    moment to tell a person where to connect)."""
    bridge = Bridge(config, on_secret=on_secret, config_path=config_path)
    loop = asyncio.get_running_loop()
    if config_path is not None:
        loop.add_signal_handler(signal.SIGHUP, bridge.reload)
    with young_generation():  # bridge/runtime/gc_policy.py
        try:
            await bridge.start()
            if on_started is not None:
                on_started(bridge)
            await stop.wait()
        finally:
            if config_path is not None:
                loop.remove_signal_handler(signal.SIGHUP)
            await bridge.stop()
