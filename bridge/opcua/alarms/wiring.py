"""Wires the alarms feature into a bridge: conditions, their methods, HistoryReadEvent, notifiers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncua import Server, ua

from bridge.config import BridgeConfig
from bridge.opcua.alarms.methods import ConditionMethods
from bridge.opcua.alarms.service import AlarmService
from bridge.opcua.history.events import EventHistory
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.services.audit import AuditEvents
from bridge.wincc.client import WinCCClient

__all__ = ["install"]

O = ua.ObjectIds


async def install(
    server: Server,
    directory: TagDirectory,
    client: WinCCClient,
    config: BridgeConfig,
    root: ua.NodeId,
    history: Any,
    calls: Any,
    handlers: Any,
    feeds: Sequence[tuple[str, WinCCClient]] | None = None,
    audit: AuditEvents | None = None,
) -> tuple[AlarmService, ConditionMethods]:
    """Conditions, their methods (a route of the Call service) and HistoryReadEvent (the history service's event
    reader); the Server object becomes an event notifier with history. Call `start()` on the service to poll."""
    ns = await server.register_namespace(config.opcua.namespace_uri + "/alarms")
    alarms = AlarmService(server, directory, client, config.alarms, ns, root, feeds)
    timeout_s = max(station.timeouts.write_s for station in config.stations())
    methods = ConditionMethods(alarms, timeout_s, audit)
    calls.routes.append(methods)
    events = EventHistory(directory, client, config.history, root, ns, alarms.source_for)
    history.event_reader = events.read
    handlers.on_close.append(events.release)
    aspace = server.iserver.aspace
    notifier = ua.EventNotifier.SubscribeToEvents.mask | ua.EventNotifier.HistoryRead.mask
    await server.write_attribute_value(
        ua.NodeId(O.Server), ua.DataValue(ua.Variant(notifier, ua.VariantType.Byte)), ua.AttributeIds.EventNotifier
    )
    capability = ua.NodeId(O.HistoryServerCapabilities_AccessHistoryEventsCapability)
    if capability in aspace:
        await server.write_attribute_value(capability, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
    return alarms, methods
