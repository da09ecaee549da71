"""Audit events (Part 5, AuditEventType and subtypes) on the Server object, for clients that subscribe to them.

One `AuditEvents` per server. `emit()` sends any audit event type: the fields every audit event has (time, user,
Status, ServerId, ClientAuditEntryId from the request being served, SourceNode/SourceName, Message, Severity) plus
the type's own fields by BrowseName; `write_update()` is AuditWriteUpdateEventType (i=2100) for one written
attribute. Each event is a fresh copy of its type's template (built once per type, which also adds the Server's
GeneratesEvent reference), so events emitted concurrently never share fields. A type's own fields whose DataType is
BaseDataType (OldValue, NewValue, ...) keep the VariantType of the value given as a `ua.Variant`.

For the alarms: `await audit.emit(ua.ObjectIds.AuditConditionAcknowledgeEventType, user=..., status=True,
source_node=condition_id, source_name="Method/Acknowledge", message="...", EventId=..., Comment=...,
ConditionEventId=..., MethodId=..., InputArguments=[...])`.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

from bridge.opcua.services.session import request_context

__all__ = ["AuditEvents"]

log = logging.getLogger(__name__)

O = ua.ObjectIds
_SERVER = ua.NodeId(O.Server)
_ALIASES = {ua.NodeId(O.UtcTime): ua.VariantType.DateTime, ua.NodeId(O.NumericRange): ua.VariantType.String}


class AuditEvents:
    def __init__(self, server: Server, server_uri: str) -> None:
        self._server = server
        self._server_uri = server_uri
        self._templates: dict[ua.NodeId, Any] = {}

    async def _template(self, event_type: ua.NodeId) -> Any:
        template = self._templates.get(event_type)
        if template is None:
            generator = await self._server.get_event_generator(event_type, _SERVER)
            template = self._templates[event_type] = generator.event
            # asyncua leaves a field typed by a DataType it cannot map (UtcTime, NumericRange) as that NodeId
            for name, vt in list(template.data_types.items()):
                if not isinstance(vt, ua.VariantType):
                    template.data_types[name] = _ALIASES.get(vt, ua.VariantType.Variant)
        return template

    async def emit(
        self,
        event_type: int | ua.NodeId,
        *,
        user: str,
        status: bool,
        source_node: ua.NodeId,
        source_name: str,
        message: str,
        severity: int = 100,
        **fields: Any,
    ) -> None:
        """Emit one audit event on the Server object. A field value may be a `ua.Variant` to fix its type."""
        type_id = event_type if isinstance(event_type, ua.NodeId) else ua.NodeId(event_type)
        try:
            event = copy.copy(await self._template(type_id))
        except Exception:  # an unknown type is a bug in the caller; the write or acknowledge itself must go on
            log.exception("cannot build audit event of type %s", type_id)
            return
        event.data_types = dict(event.data_types)
        now = datetime.now(UTC)
        event.EventId = uuid.uuid4().bytes
        event.Time = event.ReceiveTime = event.ActionTimeStamp = now
        local = time.localtime(now.timestamp())
        event.LocalTime = ua.TimeZoneDataType(Offset=local.tm_gmtoff // 60, DaylightSavingInOffset=local.tm_isdst > 0)
        event.Message = ua.LocalizedText(message)
        event.Severity = severity
        event.SourceNode, event.SourceName = source_node, source_name
        event.Status, event.ServerId, event.ClientUserId = status, self._server_uri, user
        event.ClientAuditEntryId = request_context.get().audit_entry_id  # the client's, from its RequestHeader
        for name, value in fields.items():
            if isinstance(value, ua.Variant):
                event.data_types[name] = value.VariantType
                value = value.Value
            setattr(event, name, value)
        await self._server.iserver.subscription_service.trigger_event(event)

    async def write_update(
        self,
        *,
        user: str,
        node_id: ua.NodeId,
        attribute_id: int,
        index_range: str | None,
        old: ua.Variant | None,
        new: ua.Variant | None,
        status: ua.StatusCode,
        what: str,
    ) -> None:
        """AuditWriteUpdateEventType for one attribute of one node; `what` names it for the Message."""
        null = ua.Variant(None)
        await self.emit(
            O.AuditWriteUpdateEventType,
            user=user,
            status=status.is_good(),
            source_node=node_id,
            source_name="Attribute/Write",
            message=f"write {what} by {user}: {status.name}",
            severity=100 if status.is_good() else 500,
            AttributeId=ua.Variant(int(attribute_id), ua.VariantType.UInt32),
            IndexRange=index_range or None,
            OldValue=old or null,
            NewValue=new or null,
        )
