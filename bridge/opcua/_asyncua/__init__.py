"""Every asyncua internal the bridge depends on, in one place.

asyncua's public API (`asyncua.Server`, `asyncua.ua`, `asyncua.crypto`, node methods) is used everywhere. What it
does not offer - bulk node building, a Bad value that keeps its last value, per-node write vetoes, BrowseNext, a
monitored item service that scales - the bridge gets by reaching into asyncua's server internals: private
attributes, internal classes it subclasses, private methods it overrides. Each such reach is a *touchpoint*, and
every touchpoint is in this package and nowhere else, one numbered section per module, saying why the bridge needs
it and which asyncua version it was read against. tests/unit/test_asyncua_touchpoints.py checks the names and
signatures each section relies on, so an asyncua upgrade that moves one fails there with the touchpoint's name
instead of somewhere deep.

Adding a touchpoint: add a module for the next numbered section (a heading comment, the why, "read against asyncua
X"), import the internal there, expose a small function or base class with a public name, end the module with
`TOUCHPOINTS: list[Touchpoint] = [...]` naming every private name and signature it relies on, and add it below
(its public names and its TOUCHPOINTS).
"""

from __future__ import annotations

from bridge.opcua._asyncua import (
    attributes,
    browse_next,
    enums,
    events,
    history_pages,
    item_service,
    log_records,
    login,
    publishing,
    request_scope,
    service_calls,
    sessions,
    shared_attributes,
    storage,
    transport_guard,
    user_manager,
)
from bridge.opcua._asyncua.attributes import AttributeValue, SlimAttribute
from bridge.opcua._asyncua.browse_next import install_browse_next
from bridge.opcua._asyncua.enums import tolerate_unknown_values
from bridge.opcua._asyncua.events import event_items_of
from bridge.opcua._asyncua.history_pages import Buffer, from_binary, struct_to_binary
from bridge.opcua._asyncua.item_service import DataChangeFilter, ItemServiceBase, MonitoredItemData
from bridge.opcua._asyncua.login import OffLoopLogin
from bridge.opcua._asyncua.processor import BridgeProcessor, install_request_observer
from bridge.opcua._asyncua.publishing import datachange_callbacks, store_value
from bridge.opcua._asyncua.request_scope import (
    NONE_POLICY_URI,
    RequestContext,
    is_timeout_close,
    monitored_item_count,
    request_context,
    request_deadline,
)
from bridge.opcua._asyncua.service_calls import ConcurrentServiceCalls
from bridge.opcua._asyncua.sessions import (
    InternalServer,
    InternalSession,
    bind_condition_refresh,
    new_session,
    replace_item_service,
    subscriptions,
    write_as,
)
from bridge.opcua._asyncua.shared_attributes import (
    LeanAttribute,
    LeanNode,
    NameAttribute,
    SharedAttributes,
    TemplateAttribute,
    lean_node,
    own_copy,
)
from bridge.opcua._asyncua.storage import NodeData, UaAddressSpace, address_space, node_table
from bridge.opcua._asyncua.touchpoint import ASYNCUA_VERSION, Touchpoint
from bridge.opcua._asyncua.transport_guard import (
    MIN_BUFFER_SIZE,
    ConnectionGuard,
    GuardedProtocol,
    install_connection_guard,
)
from bridge.opcua._asyncua.user_manager import UserManager

__all__ = [
    "own_copy",
    "lean_node",
    "TemplateAttribute",
    "SharedAttributes",
    "NameAttribute",
    "LeanNode",
    "LeanAttribute",
    "ASYNCUA_VERSION",
    "MIN_BUFFER_SIZE",
    "NONE_POLICY_URI",
    "TOUCHPOINTS",
    "AttributeValue",
    "BridgeProcessor",
    "Buffer",
    "ConcurrentServiceCalls",
    "ConnectionGuard",
    "DataChangeFilter",
    "GuardedProtocol",
    "InternalServer",
    "InternalSession",
    "ItemServiceBase",
    "MonitoredItemData",
    "NodeData",
    "OffLoopLogin",
    "RequestContext",
    "SlimAttribute",
    "Touchpoint",
    "UaAddressSpace",
    "UserManager",
    "address_space",
    "bind_condition_refresh",
    "datachange_callbacks",
    "event_items_of",
    "from_binary",
    "install_browse_next",
    "install_connection_guard",
    "install_request_observer",
    "is_timeout_close",
    "monitored_item_count",
    "new_session",
    "node_table",
    "replace_item_service",
    "request_context",
    "request_deadline",
    "store_value",
    "struct_to_binary",
    "subscriptions",
    "tolerate_unknown_values",
    "write_as",
]

# every section's checks, in section order (section 0, how they are checked: touchpoint.py)
TOUCHPOINTS: list[Touchpoint] = [
    *storage.TOUCHPOINTS,  # 1
    *attributes.TOUCHPOINTS,  # 2
    *publishing.TOUCHPOINTS,  # 3
    *sessions.TOUCHPOINTS,  # 4
    *browse_next.TOUCHPOINTS,  # 5
    *item_service.TOUCHPOINTS,  # 6
    *user_manager.TOUCHPOINTS,  # 7
    *request_scope.TOUCHPOINTS,  # 8
    *history_pages.TOUCHPOINTS,  # 9
    *transport_guard.TOUCHPOINTS,  # 10
    *enums.TOUCHPOINTS,  # 11
    *log_records.TOUCHPOINTS,  # 12
    *events.TOUCHPOINTS,  # 13
    *service_calls.TOUCHPOINTS,  # 14
    *login.TOUCHPOINTS,  # 15
    *shared_attributes.TOUCHPOINTS,  # 16
]
