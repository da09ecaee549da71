"""The UaProcessor the bridge installs: sections 5 (BrowseNext), 8 (the request context), 14 (slow service calls
beside a connection's other requests) and 15 (password checks beside the event loop) in one class, put where asyncua
looks it up for each new connection."""

from __future__ import annotations

from asyncua.server import binary_server_asyncio
from asyncua.server.uaprocessor import UaProcessor

from bridge.opcua._asyncua.browse_next import BrowseNextProcessor
from bridge.opcua._asyncua.login import OffLoopLogin
from bridge.opcua._asyncua.request_scope import RequestScope
from bridge.opcua._asyncua.service_calls import ConcurrentServiceCalls


class BridgeProcessor(RequestScope, ConcurrentServiceCalls, BrowseNextProcessor, OffLoopLogin):
    """Per request: its context and observer (RequestScope) around the serial order of slow calls
    (ConcurrentServiceCalls) around BrowseNext, the off-loop password check of an ActivateSession (OffLoopLogin)
    and asyncua's own dispatch."""


def install_request_observer() -> None:
    """Process-wide, idempotent, BrowseNext included (BridgeProcessor is a BrowseNextProcessor)."""
    if binary_server_asyncio.UaProcessor in (UaProcessor, BrowseNextProcessor):
        binary_server_asyncio.UaProcessor = BridgeProcessor
