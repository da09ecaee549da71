"""Server diagnostics a client can read (Part 5, ServerDiagnosticsType), which asyncua 2.1 leaves empty.

The sessions (session.py) count into one `ServerCounters`; `DiagnosticsPublisher.publish()` turns the counters,
the live sessions and the subscriptions into the standard nodes: ServerDiagnosticsSummary (i=2275) and its
variables, EnabledFlag (i=2294, always true and read-only: the counters cost nothing worth switching off) and
SessionsDiagnosticsSummary/SessionDiagnosticsArray (i=3707), one SessionDiagnosticsDataType per session with its
subscription and monitored item counts and its requests per service. The bridge publishes once a second and
writes a node only when its value changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

from bridge.opcua._asyncua import monitored_item_count

__all__ = ["DiagnosticsPublisher", "ServerCounters", "SessionCounters", "service_count_field"]

O = ua.ObjectIds
_SUMMARY = "Server_ServerDiagnostics_ServerDiagnosticsSummary_"
_SESSION_FIELDS = {f.name for f in fields(ua.SessionDiagnosticsDataType)}
# request type NodeId -> the SessionDiagnosticsDataType field counting it ("ReadRequest" -> "ReadCount")
_SERVICE_FIELDS: dict[ua.NodeId, str] = {
    ua.NodeId(getattr(O, n)): f"{n.removesuffix('Request_Encoding_DefaultBinary')}Count"
    for n in dir(O)
    if n.endswith("Request_Encoding_DefaultBinary")
    and f"{n.removesuffix('Request_Encoding_DefaultBinary')}Count" in _SESSION_FIELDS
}


def service_count_field(type_id: ua.NodeId) -> str | None:
    """The SessionDiagnosticsDataType counter of a request type, or None for requests it does not count."""
    return _SERVICE_FIELDS.get(type_id)


@dataclass
class ServerCounters:
    """What happened since start; the current numbers (sessions, subscriptions) are counted when published."""

    cumulated_sessions: int = 0
    security_rejected_sessions: int = 0
    rejected_sessions: int = 0
    session_timeouts: int = 0
    session_aborts: int = 0
    cumulated_subscriptions: int = 0
    security_rejected_requests: int = 0
    rejected_requests: int = 0


@dataclass
class SessionCounters:
    """One session's requests: service field -> [total, errors]; and when the client connected and was last heard."""

    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_contact: float = field(default_factory=time.time)
    total: list[int] = field(default_factory=lambda: [0, 0])
    unauthorized: int = 0
    services: dict[str, list[int]] = field(default_factory=dict)

    def count(self, service: str | None, failed: bool, unauthorized: bool) -> None:
        self.last_contact = time.time()
        self.total[0] += 1
        self.total[1] += failed
        self.unauthorized += unauthorized
        if service is not None:
            counter = self.services.setdefault(service, [0, 0])
            counter[0] += 1
            counter[1] += failed


def _summary_value(counters: ServerCounters, sessions: int, subscriptions: Iterable[Any]) -> dict[str, int]:
    subs = list(subscriptions)
    return {
        "ServerViewCount": 0,
        "CurrentSessionCount": sessions,
        "CumulatedSessionCount": counters.cumulated_sessions,
        "SecurityRejectedSessionCount": counters.security_rejected_sessions,
        "RejectedSessionCount": counters.rejected_sessions,
        "SessionTimeoutCount": counters.session_timeouts,
        "SessionAbortCount": counters.session_aborts,
        "CurrentSubscriptionCount": len(subs),
        "CumulatedSubscriptionCount": counters.cumulated_subscriptions,
        "PublishingIntervalCount": len({s.data.RevisedPublishingInterval for s in subs}),
        "SecurityRejectedRequestsCount": counters.security_rejected_requests,
        "RejectedRequestsCount": counters.rejected_requests,
    }


class DiagnosticsPublisher:
    def __init__(self, server: Server, counters: ServerCounters, sessions: dict[Any, Any], endpoint_url: str) -> None:
        """`sessions`: the live BridgeSessions by session id, each with a `diagnostics: SessionCounters`."""
        self._server = server
        self._counters = counters
        self._sessions = sessions
        self._endpoint = endpoint_url
        self._written: dict[int, Any] = {}

    async def setup(self) -> None:
        flag = self._server.get_node(ua.NodeId(O.Server_ServerDiagnostics_EnabledFlag))
        await flag.write_value(ua.Variant(True, ua.VariantType.Boolean))
        await flag.write_attribute(ua.AttributeIds.AccessLevel, ua.DataValue(ua.Variant(1, ua.VariantType.Byte)))
        await self.publish()

    async def _write(self, node_id: int, value: Any, vt: ua.VariantType) -> None:
        if self._written.get(node_id) == value:
            return
        self._written[node_id] = value
        await self._server.write_attribute_value(ua.NodeId(node_id), ua.DataValue(ua.Variant(value, vt)))

    async def publish(self) -> None:
        subscriptions = self._server.iserver.subscription_service.subscriptions
        summary = _summary_value(self._counters, len(self._sessions), subscriptions.values())
        for name, value in summary.items():
            await self._write(getattr(O, _SUMMARY + name), value, ua.VariantType.UInt32)
        await self._write(
            O.Server_ServerDiagnostics_ServerDiagnosticsSummary,
            ua.ServerDiagnosticsSummaryDataType(**summary),
            ua.VariantType.ExtensionObject,
        )
        array = [self._session_value(s, subscriptions) for s in list(self._sessions.values())]
        await self._write(
            O.Server_ServerDiagnostics_SessionsDiagnosticsSummary_SessionDiagnosticsArray,
            array,
            ua.VariantType.ExtensionObject,
        )

    def _session_value(self, session: Any, subscriptions: dict[int, Any]) -> ua.SessionDiagnosticsDataType:
        diag: SessionCounters = session.diagnostics
        own = [s for s in subscriptions.values() if s.session_id == session.session_id]
        items = sum(monitored_item_count(s) for s in own)
        value = ua.SessionDiagnosticsDataType(
            SessionId=session.session_id,
            SessionName=session.session_name,
            ClientDescription=session.client_description,
            EndpointUrl=self._endpoint,
            ActualSessionTimeout=float((session.session_timeout or 0) * 1000),
            ClientConnectionTime=diag.connected_at,
            ClientLastContactTime=datetime.fromtimestamp(diag.last_contact, UTC),
            CurrentSubscriptionsCount=len(own),
            CurrentMonitoredItemsCount=items,
            TotalRequestCount=ua.ServiceCounterDataType(TotalCount=diag.total[0], ErrorCount=diag.total[1]),
            UnauthorizedRequestCount=diag.unauthorized,
        )
        for name, (total, errors) in diag.services.items():
            setattr(value, name, ua.ServiceCounterDataType(TotalCount=total, ErrorCount=errors))
        return value
