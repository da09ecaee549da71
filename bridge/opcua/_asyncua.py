"""Every asyncua internal the bridge depends on, in one place.

asyncua's public API (`asyncua.Server`, `asyncua.ua`, `asyncua.crypto`, node methods) is used everywhere. What it
does not offer - bulk node building, a Bad value that keeps its last value, per-node write vetoes, BrowseNext, a
monitored item service that scales - the bridge gets by reaching into asyncua's server internals: private
attributes, internal classes it subclasses, private methods it overrides. Each such reach is a *touchpoint*, and
every touchpoint is here and nowhere else, one section each, saying why the bridge needs it and which asyncua
version it was read against. tests/unit/test_asyncua_touchpoints.py checks the names and signatures each section
relies on, so an asyncua upgrade that moves one fails there with the touchpoint's name instead of somewhere deep.

Adding a touchpoint: add a numbered section at the end of the file (a heading comment, the why, "read against
asyncua X"), import the internal at the top, expose a small function or base class with a public name, and end the
section with `TOUCHPOINTS += [...]` naming every private name and signature it relies on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from asyncua import Server, ua
from asyncua.common.connection import TransportLimits
from asyncua.common.utils import Buffer
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.server import binary_server_asyncio
from asyncua.server.address_space import AddressSpace as UaAddressSpace
from asyncua.server.address_space import AttributeService, AttributeValue, NodeData
from asyncua.server.binary_server_asyncio import OPCUAProtocol
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemData, MonitoredItemService
from asyncua.server.uaprocessor import UaProcessor
from asyncua.server.user_managers import UserManager
from asyncua.ua import ua_binary
from asyncua.ua.ua_binary import (
    from_binary,
    header_from_binary,
    nodeid_from_binary,
    struct_from_binary,
    struct_to_binary,
    uatcp_to_binary,
)

# what the binary decoder makes of a client's filter; ua.DataChangeFilter is a hand-written subclass of it, which
# only in-process code ever builds, so an isinstance check against ua.DataChangeFilter misses every client's filter
from asyncua.ua.uaprotocol_auto import DataChangeFilter

from bridge.opcua._touchpoints import ASYNCUA_VERSION, InstanceAttribute, Touchpoint

__all__ = [
    "ASYNCUA_VERSION",
    "TOUCHPOINTS",
    "AttributeValue",
    "DataChangeFilter",
    "InternalServer",
    "InternalSession",
    "ItemServiceBase",
    "MonitoredItemData",
    "NodeData",
    "LeanAttribute",
    "LeanNode",
    "lean_node",
    "NameAttribute",
    "SharedAttributes",
    "SlimAttribute",
    "TemplateAttribute",
    "own_copy",
    "Touchpoint",
    "UaAddressSpace",
    "UserManager",
    "address_space",
    "bind_condition_refresh",
    "datachange_callbacks",
    "install_browse_next",
    "new_session",
    "node_table",
    "replace_item_service",
    "store_value",
    "subscriptions",
    "write_as",
    "NONE_POLICY_URI",
    "ObservedProcessor",
    "install_request_observer",
    "is_timeout_close",
    "monitored_item_count",
    "Buffer",
    "from_binary",
    "struct_to_binary",
    "MIN_BUFFER_SIZE",
    "ConnectionGuard",
    "GuardedProtocol",
    "install_connection_guard",
    "tolerate_unknown_values",
    "event_items_of",
    "BridgeProcessor",
    "ConcurrentServiceCalls",
    "request_deadline",
    "OffLoopLogin",
]

log = logging.getLogger(__name__)


# ---- 0. How touchpoints are checked ---------------------------------------------------------------------------------
# Each section below appends what it relies on to TOUCHPOINTS (Touchpoint / InstanceAttribute from _touchpoints.py,
# with ASYNCUA_VERSION, the asyncua every section was read against); tests/unit/test_asyncua_touchpoints.py checks
# them all.


TOUCHPOINTS: list[Touchpoint] = []


# ---- 1. Address space storage -------------------------------------------------------------------------------------
# Why: asyncua's node API (add_variable -> AddNodesItem -> checks) manages a few thousand nodes/s and is quadratic in
# a big folder; the bridge builds 100,000 tags by writing NodeData objects straight into the address space's node
# dict, and removes them from it. Read against asyncua 2.1.0: AddressSpace._nodes: dict[NodeId, NodeData].


def address_space(server: Server) -> UaAddressSpace:
    """The server's address space object (Read, Browse and subscriptions all answer from it)."""
    return server.iserver.aspace


def node_table(server: Server) -> dict[ua.NodeId, NodeData]:
    """The address space's own NodeId -> NodeData dict: whatever is put here is a node, at once."""
    nodes: dict[ua.NodeId, NodeData] = server.iserver.aspace._nodes
    return nodes


TOUCHPOINTS += [
    InstanceAttribute("1 address space storage", UaAddressSpace, "_nodes"),
    InstanceAttribute("1 address space storage", InternalServer, "aspace"),
    Touchpoint("1 address space storage", NodeData, "__init__", ("self", "nodeid")),
    InstanceAttribute("1 address space storage", NodeData, "attributes"),
    InstanceAttribute("1 address space storage", NodeData, "references"),
]


# ---- 2. Slim attribute values --------------------------------------------------------------------------------------
# Why: asyncua's AttributeValue is 176 bytes with a dict of datachange callbacks per attribute (x15 per variable);
# the slotted subclass is 112 bytes and creates the dict on first use (most attributes are never monitored).
# Read against asyncua 2.1.0: AttributeValue has exactly value, value_callback, value_setter, datachange_callbacks,
# and asyncua calls value_callback(nodeid, attr) before looking at the stored value.


class SlimAttribute(AttributeValue):
    """asyncua's AttributeValue with slots, and the datachange callback dict created on first use."""

    __slots__ = ("value", "value_callback", "value_setter", "_callbacks")

    def __init__(self, value: ua.DataValue | None) -> None:  # deliberately not calling super(): no dict
        self.value = value
        self.value_callback: Callable[[ua.NodeId, ua.AttributeIds], ua.DataValue] | None = None
        self.value_setter: Callable[..., None] | None = None
        self._callbacks: dict[int, Any] | None = None

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        cbs = self._callbacks
        if cbs is None:
            cbs = self._callbacks = {}
        return cbs


TOUCHPOINTS += [
    Touchpoint("2 slim attribute values", AttributeValue, "__init__", ("self", "value")),
    *(
        InstanceAttribute("2 slim attribute values", AttributeValue, name)
        for name in ("value", "value_callback", "value_setter", "datachange_callbacks")
    ),
]


# ---- 3. Publishing a value that keeps its last value when Bad -------------------------------------------------------
# Why: write_attribute_value replaces the value with null whenever the StatusCode is Bad, and the design keeps the
# last value visible with the Bad status; the sync engine stores the DataValue itself and calls the datachange
# callbacks exactly as asyncua does. Read against asyncua 2.1.0: AddressSpace.write_attribute_value sets
# attval.value, clears value_callback, then awaits callback(handle, dv) for each of attval.datachange_callbacks.


def store_value(node: NodeData, dv: ua.DataValue) -> AttributeValue:
    """Make `dv` the node's Value as is (no null-on-Bad); returns the attribute, whose callbacks the caller awaits."""
    attval = node.attributes[ua.AttributeIds.Value]
    attval.value = dv
    attval.value_callback = None
    return attval


def datachange_callbacks(attval: AttributeValue) -> list[tuple[int, Callable[..., Any]]]:
    """(handle, callback) of every monitored item on an attribute, as asyncua calls them: `await callback(handle,
    dv)`. A copy: a callback may delete items."""
    if getattr(attval, "_callbacks", False) is None:  # never monitored: do not make it an empty dict to say so
        return []
    return list(attval.datachange_callbacks.items())


TOUCHPOINTS += [
    Touchpoint("3 publishing a value", UaAddressSpace, "write_attribute_value", ("self", "nodeid", "attr", "value")),
    Touchpoint(
        "3 publishing a value", UaAddressSpace, "add_datachange_callback", ("self", "nodeid", "attr", "callback")
    ),
    Touchpoint("3 publishing a value", UaAddressSpace, "delete_datachange_callback", ("self", "handle")),
]


# ---- 4. Sessions -----------------------------------------------------------------------------------------------------
# Why: asyncua's InternalSession answers Read/Write/HistoryRead/Browse/Call straight from its own services, with no
# per-node veto, no user check on HistoryRead and no BrowseNext; the bridge's BridgeSession (services/session.py)
# subclasses it and its BridgeInternalServer subclasses InternalServer to create them.
# Read against asyncua 2.1.0: InternalServer.create_session(name, user, external) and
# InternalSession(internal_server, aspace, submgr, name, user=, external=); the session attributes used are
# iserver, aspace, subscription_service, name, user, session_id; the service methods overridden are listed in
# SESSION_METHODS.

SESSION_METHODS = (
    "activate_session",
    "read",
    "write",
    "history_read",
    "browse",
    "browse_next",
    "call",
    "create_subscription",
    "create_monitored_items",
    "modify_monitored_items",
    "delete_monitored_items",
    "delete_subscriptions",
    "close_session",
)


def new_session(
    session_class: type[InternalSession], iserver: InternalServer, name: str, user: Any, external: bool
) -> InternalSession:
    """A session of `session_class`, built the way InternalServer.create_session builds asyncua's own."""
    return session_class(iserver, iserver.aspace, iserver.subscription_service, name, user=user, external=external)


def subscriptions(server: Server) -> dict[int, Any]:
    """Subscription id -> asyncua's InternalSubscription, for every client subscription on the server."""
    subs: dict[int, Any] = server.iserver.subscription_service.subscriptions
    return subs


def replace_item_service(
    session: InternalSession, subscription_id: int, factory: Callable[[Any, UaAddressSpace], MonitoredItemService]
) -> None:
    """Swap a subscription's monitored item service for `factory(subscription, aspace)`; only while it is empty
    (just created), since the old service's items would be lost."""
    subscription = session.subscription_service.subscriptions.get(subscription_id)
    if subscription is not None:
        subscription.monitored_item_srv = factory(subscription, session.aspace)


async def write_as(server: Server, params: ua.WriteParameters, user: Any) -> list[ua.StatusCode]:
    """asyncua's own attribute write service, checked against `user` (what an unpatched Write does)."""
    codes: list[ua.StatusCode] = await server.iserver.attribute_service.write(params, user=user)
    return codes


def bind_condition_refresh(iserver: InternalServer) -> None:
    """asyncua binds ConditionRefresh only if this is set before Server.init() (Alarms & Conditions need it).
    Read against asyncua 2.1.0: InternalServer.bind_condition_methods, read in InternalServer.init."""
    iserver.bind_condition_methods = True


TOUCHPOINTS += [
    Touchpoint("4 sessions", InternalServer, "create_session", ("self", "name", "user", "external")),
    Touchpoint(
        "4 sessions",
        InternalSession,
        "__init__",
        ("self", "internal_server", "aspace", "submgr", "name", "user", "external"),
    ),
    *(Touchpoint("4 sessions", InternalSession, name) for name in SESSION_METHODS if name != "browse_next"),
    Touchpoint("4 sessions", InternalSession, "browse_next", ("self", "parameters")),
    Touchpoint("4 sessions", InternalSession, "read", ("self", "params")),
    Touchpoint("4 sessions", InternalSession, "call", ("self", "params")),
    *(
        InstanceAttribute("4 sessions", InternalSession, name)
        for name in ("iserver", "aspace", "subscription_service", "name", "user", "session_id")
    ),
    *(
        InstanceAttribute("4 sessions", InternalServer, name)
        for name in ("subscription_service", "attribute_service", "bind_condition_methods")
    ),
    Touchpoint("4 sessions", AttributeService, "write", ("self", "params", "user")),
]


# ---- 5. BrowseNext dispatch ------------------------------------------------------------------------------------------
# Why: asyncua 2.1's UaProcessor has no BrowseNext branch: the request never reaches the session and the client gets
# BadServiceUnsupported. The subclass decodes BrowseNext and hands it to a session that implements browse_next
# (a BridgeSession), with the same checks asyncua applies to every service; everything else goes to asyncua
# unchanged. asyncua creates one UaProcessor per connection by looking the class up in binary_server_asyncio, so
# the subclass is installed there. Permission: whoever may Browse may BrowseNext (SimpleRoleRuleset lists only
# Browse). Read against asyncua 2.1.0: UaProcessor._process_message(typeid, requesthdr, seqhdr, body), its
# session, _connection.security_policy.permissions, session_last_activity, send_response(handle, seqhdr, response).

_BROWSE_REQUEST = ua.NodeId(ua.ObjectIds.BrowseRequest_Encoding_DefaultBinary)
_BROWSE_NEXT_REQUEST = ua.NodeId(ua.ObjectIds.BrowseNextRequest_Encoding_DefaultBinary)


def _answers_browse_next(session: Any) -> bool:
    return isinstance(session, InternalSession) and type(session).browse_next is not InternalSession.browse_next


class BrowseNextProcessor(UaProcessor):
    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        session = self.session
        if typeid != _BROWSE_NEXT_REQUEST or not _answers_browse_next(session):
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        assert session is not None
        if not session.is_activated():
            raise ua.UaStatusCodeError(ua.StatusCodes.BadSessionNotActivated)
        permissions = self._connection.security_policy.permissions
        if permissions is not None and permissions.check_validity(session.user, _BROWSE_REQUEST, body) is False:
            raise ua.uaerrors.BadUserAccessDenied
        self.session_last_activity = time.monotonic()
        session.touch()
        params = struct_from_binary(ua.BrowseNextParameters, body)
        response = ua.BrowseNextResponse()
        response.Parameters.Results = await session.browse_next(params)
        self.send_response(requesthdr.RequestHandle, seqhdr, response)
        return True


def install_browse_next() -> None:
    """Process-wide, idempotent: sessions that do not implement browse_next behave exactly as before."""
    if binary_server_asyncio.UaProcessor is UaProcessor:
        binary_server_asyncio.UaProcessor = BrowseNextProcessor


TOUCHPOINTS += [
    Touchpoint("5 BrowseNext dispatch", binary_server_asyncio, "UaProcessor"),
    Touchpoint(
        "5 BrowseNext dispatch", UaProcessor, "_process_message", ("self", "typeid", "requesthdr", "seqhdr", "body")
    ),
    Touchpoint(
        "5 BrowseNext dispatch",
        UaProcessor,
        "send_response",
        ("self", "requesthandle", "seqhdr", "response", "msgtype"),
    ),
    *(
        InstanceAttribute("5 BrowseNext dispatch", UaProcessor, name)
        for name in ("session", "_connection", "session_last_activity")
    ),
    Touchpoint("5 BrowseNext dispatch", InternalSession, "is_activated"),
    Touchpoint("5 BrowseNext dispatch", InternalSession, "touch"),
]


# ---- 6. Monitored item service -------------------------------------------------------------------------------------
# Why: asyncua 2.1's service deletes in O(n) per item, compares deadbands with the previous sample, has no Percent
# deadband and keeps a dozen objects per item (see sync/monitored_items.py). The bridge's service replaces its
# create / modify / delete steps, which asyncua only offers as private methods; this base class turns them into
# public hooks and names the private state they work on. Read against asyncua 2.1.0: MonitoredItemService(isub,
# aspace) with _monitored_items, _monitored_events, _monitored_datachange, _monitored_item_counter,
# _revise_queue_size(requested), _create_data_change_monitored_item(params), _modify_monitored_item(params),
# _delete_monitored_items(mid); isub.data.RevisedPublishingInterval and isub.enqueue_datachange_event(mid, event,
# size).


class ItemServiceBase(MonitoredItemService):
    """asyncua's MonitoredItemService with its private create / modify / delete steps as public hooks."""

    # -- state asyncua keeps, under public names
    @property
    def items(self) -> dict[int, Any]:
        """Monitored item id -> its data (asyncua's MonitoredItemData, or the subclass's own object)."""
        items: dict[int, Any] = self._monitored_items
        return items

    @property
    def datachange_items(self) -> dict[int, int]:
        """Callback handle -> monitored item id, for data change items."""
        return self._monitored_datachange

    @property
    def event_items(self) -> dict[ua.NodeId, list[int]]:
        """Node -> its event monitored item ids."""
        return self._monitored_events

    def next_item_id(self) -> int:
        self._monitored_item_counter += 1
        return self._monitored_item_counter

    def revise_queue_size(self, requested: int) -> int:
        return self._revise_queue_size(requested)

    @property
    def revised_publishing_interval(self) -> float:
        interval: float = self.isub.data.RevisedPublishingInterval
        return interval

    async def enqueue(self, mid: int, event: ua.MonitoredItemNotification, queue_size: int) -> None:
        await self.isub.enqueue_datachange_event(mid, event, queue_size)

    # -- hooks: asyncua's behaviour unless overridden
    async def create_data_change_item(self, params: ua.MonitoredItemCreateRequest) -> ua.MonitoredItemCreateResult:
        return await super()._create_data_change_monitored_item(params)

    def modify_item(self, params: ua.MonitoredItemModifyRequest) -> ua.MonitoredItemModifyResult:
        return super()._modify_monitored_item(params)

    def delete_item(self, mid: int) -> ua.StatusCode:
        return super()._delete_monitored_items(mid)

    # -- asyncua's private entry points, routed to the hooks
    async def _create_data_change_monitored_item(
        self, params: ua.MonitoredItemCreateRequest
    ) -> ua.MonitoredItemCreateResult:
        return await self.create_data_change_item(params)

    def _modify_monitored_item(self, params: ua.MonitoredItemModifyRequest) -> ua.MonitoredItemModifyResult:
        return self.modify_item(params)

    def _delete_monitored_items(self, mid: int) -> ua.StatusCode:
        return self.delete_item(mid)


TOUCHPOINTS += [
    Touchpoint("6 monitored item service", MonitoredItemService, "__init__", ("self", "isub", "aspace")),
    *(
        InstanceAttribute("6 monitored item service", MonitoredItemService, name)
        for name in (
            "_monitored_items",
            "_monitored_events",
            "_monitored_datachange",
            "_monitored_item_counter",
            "isub",
            "aspace",
        )
    ),
    Touchpoint("6 monitored item service", MonitoredItemService, "_revise_queue_size", ("self", "requested")),
    Touchpoint(
        "6 monitored item service", MonitoredItemService, "_create_data_change_monitored_item", ("self", "params")
    ),
    Touchpoint("6 monitored item service", MonitoredItemService, "_modify_monitored_item", ("self", "params")),
    Touchpoint("6 monitored item service", MonitoredItemService, "_delete_monitored_items", ("self", "mid")),
    InstanceAttribute("6 monitored item service", InternalSubscription, "data"),
    Touchpoint(
        "6 monitored item service",
        InternalSubscription,
        "enqueue_datachange_event",
        ("self", "mid", "eventdata", "maxsize"),
    ),
    InstanceAttribute("6 monitored item service", InternalSubscription, "monitored_item_srv"),
    Touchpoint(
        "6 monitored item service", MonitoredItemService, "datachange_callback", ("self", "handle", "value", "error")
    ),
    Touchpoint(
        "6 monitored item service", MonitoredItemService, "trigger_datachange", ("self", "handle", "nodeid", "attr")
    ),
]


# ---- 7. User manager -------------------------------------------------------------------------------------------------
# Why: Server(user_manager=...) takes a UserManager, whose get_user asyncua calls synchronously during
# ActivateSession. Read against asyncua 2.1.0: UserManager.get_user(iserver, username=, password=, certificate=).
# (UserManager is re-exported above.)

TOUCHPOINTS += [
    Touchpoint("7 user manager", UserManager, "get_user", ("self", "iserver", "username", "password", "certificate")),
]


# ---- 8. Request context: the channel's policy, the TimeoutHint, each request's outcome -------------------------------
# Why: Part 4 says the server ignores the client certificate on SecurityPolicy None, and only the processor knows
# the channel's policy; Read's MaxAge wait must end before the request's TimeoutHint; the server diagnostics count
# every request and its outcome per session, and sessions that end by timeout. asyncua hands none of that to the
# session. The processor asks its InternalServer for `observe_request(session, typeid, requesthdr, secured)`, a
# context manager wrapped around each request (BridgeInternalServer has one; other servers are left alone).
# Read against asyncua 2.1.0: UaProcessor.iserver, session, _connection.security_policy.URI (SecurityPolicyNone.URI
# on an unsecured channel), RequestHeader.TimeoutHint; InternalSession._timeout_task is the task that closes an idle
# session; InternalSubscription.monitored_item_srv._monitored_items.

NONE_POLICY_URI: str = SecurityPolicyNone.URI


class ObservedProcessor(BrowseNextProcessor):
    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        observe = getattr(self.iserver, "observe_request", None)
        if observe is None:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        secured = getattr(self._connection.security_policy, "URI", NONE_POLICY_URI) != NONE_POLICY_URI
        with observe(self.session, typeid, requesthdr, secured):
            return await super()._process_message(typeid, requesthdr, seqhdr, body)


def install_request_observer() -> None:
    """Process-wide, idempotent, BrowseNext included (ObservedProcessor is a BrowseNextProcessor)."""
    if binary_server_asyncio.UaProcessor in (UaProcessor, BrowseNextProcessor):
        binary_server_asyncio.UaProcessor = BridgeProcessor  # sections 8 and 14


def is_timeout_close(session: InternalSession, current: asyncio.Task[Any] | None) -> bool:
    """True when `current` (the running task) is the session's own idle watchdog, which closes timed-out sessions."""
    return current is not None and current is getattr(session, "_timeout_task", None)


def monitored_item_count(subscription: Any) -> int:
    """How many monitored items an InternalSubscription holds (asyncua has no public count)."""
    return len(subscription.monitored_item_srv._monitored_items)


TOUCHPOINTS += [
    Touchpoint("8 request context", UaProcessor, "__init__", ("self", "internal_server", "transport", "limits")),
    InstanceAttribute("8 request context", UaProcessor, "iserver"),
    Touchpoint("8 request context", SecurityPolicyNone, "URI"),
    InstanceAttribute("8 request context", InternalSession, "_timeout_task"),
    Touchpoint("8 request context", ua.RequestHeader, "TimeoutHint"),
]


# ---- 9. Pre-encoded history pages ---------------------------------------------------------------------------------
# Why: building a DataValue and a Variant per archived value and letting asyncua's generic serializer walk them
# cost more than reading the archive over REST; history/encode.py packs raw pages itself and hands asyncua an
# ExtensionObject whose Body is the encoded HistoryData (asyncua writes a Body as it is). struct_to_binary is the
# reference encoder (values the fast path does not pack, and the tests' byte-for-byte comparison); from_binary with
# Buffer decodes a page for in-process readers. Read against asyncua 2.1.0: extensionobject_to_binary(obj) encodes
# a ua.ExtensionObject (subclasses too) with struct_to_binary, i.e. TypeId, Encoding, Body; struct_to_binary(obj);
# from_binary(uatype, data); Buffer(data).

TOUCHPOINTS += [
    Touchpoint("9 pre-encoded history pages", ua_binary, "extensionobject_to_binary", ("obj",)),
    Touchpoint("9 pre-encoded history pages", ua_binary, "struct_to_binary", ("obj",)),
    Touchpoint("9 pre-encoded history pages", ua_binary, "from_binary", ("uatype", "data")),
    Touchpoint("9 pre-encoded history pages", ua.ExtensionObject, "Body"),
]


# ---- 10. Transport guard: hostile and idle TCP clients -------------------------------------------------------------
# Why: asyncua 2.1's OPCUAProtocol.data_received appends every byte to one bytes object (quadratic) until the
# message its header announces is complete, checking the size only later and only for secure chunks: a HEL, or an
# OPN after a HEL, claiming 2 GB was buffered (+250 MB RSS, loop stalls of 3 s), garbage or an HTTP request was
# buffered forever, and a connection that never sent HEL stayed open. Its limits are one total (max_connections)
# and a 30 s activation watchdog. This protocol subclass checks each header as soon as its 8 bytes are in:
# the type (HEL first and once, then only OPN/MSG/CLO), the size (a HEL at most 8 + 20 + 4 + 4096 bytes, Part 6
# 7.1.2.3; any other chunk at most the receive buffer negotiated by the HEL), and the HEL's buffer sizes (at least
# 8192, Part 6 7.1.2.3); a violation answers an ERR message and closes. A connection must send HEL within
# `hello_timeout_s` and activate a session within `activation_timeout_s`; connections are capped per client address
# and in total. A chunk asyncua cannot decode closes the connection with an ERR (asyncua logged it and went on).
# Back-pressure: a connection stops being read while `_QUEUE_PAUSE` of its messages wait for the processor or while
# its client does not read the answers (asyncio's pause_writing), so neither side's buffers grow with what a client
# sends (a client sending GetEndpoints, 40x amplified, and never reading starved the event loop); and each message
# processed yields one turn of the loop, so a connection with a full queue cannot hold it against the others.
# Read against asyncua 2.1.0: binary_server_asyncio.OPCUAProtocol (iserver, transport, processor, messages,
# _activation_watchdog, _process_one_msg; BinaryServer._make_protocol looks the class up in the module),
# InternalServer.max_connections / max_pending_activation_seconds, Server.limits (TransportLimits).

MIN_BUFFER_SIZE = 8192  # Part 6 7.1.2.3: ReceiveBufferSize and SendBufferSize shall be at least 8192 bytes
_MAX_URL = 4096  # Part 6 7.1.2.3: EndpointUrl is at most 4096 bytes
_HELLO_MIN = 8 + 5 * 4 + 4  # header, five UInt32, an empty (or null) EndpointUrl
_HELLO_MAX = _HELLO_MIN + _MAX_URL
_SECURE_MIN = 12 + 4 + 8  # header with channel id, the smallest security header, sequence header
_HEADER = struct.Struct("<3scI")
_SECURE = frozenset((b"OPN", b"MSG", b"CLO"))
_QUEUE_PAUSE, _QUEUE_RESUME = 32, 8  # messages waiting for the processor: stop reading the socket / read again
S = ua.StatusCodes


@dataclass
class ConnectionGuard:
    """The limits of one server's TCP listener, and what they have refused (exported as metrics)."""

    hello_timeout_s: float
    activation_timeout_s: float
    max_connections: int
    max_connections_per_address: int
    open_by_address: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # over the total or per-address cap
    timed_out: int = 0  # no HEL, or no activated session, in time
    rejected: int = 0  # malformed, oversized or out-of-order messages

    @property
    def open(self) -> int:
        return sum(self.open_by_address.values())

    def admit(self, host: str) -> bool:
        if self.open >= self.max_connections or self.open_by_address[host] >= self.max_connections_per_address:
            self.refused += 1
            return False
        self.open_by_address[host] += 1
        return True

    def release(self, host: str) -> None:
        self.open_by_address[host] -= 1
        if self.open_by_address[host] <= 0:
            del self.open_by_address[host]

    def metrics(self) -> dict[str, float]:
        return {
            "opcua_connections": float(self.open),
            "opcua_connections_refused_total": float(self.refused),
            "opcua_connections_timed_out_total": float(self.timed_out),
            "opcua_messages_rejected_total": float(self.rejected),
        }


def _host(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class GuardedProtocol(OPCUAProtocol):
    """OPCUAProtocol with the checks above; a server without a `connection_guard` gets asyncua's behaviour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard: ConnectionGuard | None = getattr(self.iserver, "connection_guard", None)
        self._inbox = bytearray()
        self._hello_seen = False
        self._chunk_limit = 0  # the largest chunk the client may send, set by its HEL
        self._host: str | None = None  # set while this connection counts against the guard
        self._hello_timer: asyncio.TimerHandle | None = None
        self._paused: set[str] = set()  # why the socket is not being read: "queue", "writes"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard is None:
            return super().connection_made(transport)
        self.peer_name = transport.get_extra_info("peername")
        host = _host(self.peer_name)
        if not guard.admit(host):
            log.warning(
                "refusing connection from %s: %d open from that address, %d in all (limits %d, %d)",
                self.peer_name,
                guard.open_by_address[host],
                guard.open,
                guard.max_connections_per_address,
                guard.max_connections,
            )
            _send_error(transport, S.BadTcpServerTooBusy, "too many connections")
            transport.close()
            return
        self._host = host
        super().connection_made(transport)
        if self.transport is None:  # asyncua refused it after all
            self._release()
            return
        self._hello_timer = asyncio.get_running_loop().call_later(guard.hello_timeout_s, self._hello_overdue)

    def connection_lost(self, ex: BaseException | None) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self._release()
        self._inbox = bytearray()
        super().connection_lost(ex)

    def _release(self) -> None:
        if self._host is not None and self._guard is not None:
            self._guard.release(self._host)
        self._host = None

    def _hello_overdue(self) -> None:
        if not self._hello_seen and self.transport is not None and not self.transport.is_closing():
            assert self._guard is not None
            self._guard.timed_out += 1
            self._refuse(S.BadTimeout, f"no HEL within {self._guard.hello_timeout_s:g} s", count=False)

    async def _activation_watchdog(self) -> None:
        # for the whole life of the connection, not only its start: a client that closes its session and keeps
        # the socket is closed too once it has been without an activated session that long
        timeout = self.iserver.max_pending_activation_seconds
        loop = asyncio.get_running_loop()
        without_since = loop.time()
        while self.transport is not None and not self.transport.is_closing():
            await asyncio.sleep(min(timeout, max(timeout / 4, 0.05)))
            session = self.processor.session if self.processor is not None else None
            if session is not None and session.is_activated():
                without_since = loop.time()
            elif loop.time() - without_since >= timeout:
                if self._guard is not None:
                    self._guard.timed_out += 1
                log.warning("closing connection from %s: no activated session for %.1f s", self.peer_name, timeout)
                self.transport.close()
                return

    def data_received(self, data: bytes) -> None:
        if self._guard is None:
            return super().data_received(data)
        if self.transport is None or self.transport.is_closing():
            return
        self._inbox += data
        self._parse()

    def _parse(self) -> None:
        while len(self._inbox) >= _HEADER.size and not self._paused:
            kind, _, size = _HEADER.unpack_from(self._inbox)
            problem = self._check(kind, size)
            if problem is not None:
                self._refuse(*problem)
                return
            if len(self._inbox) < size:
                return  # only ever waits for a chunk that fits the limits
            frame = bytes(self._inbox[:size])
            del self._inbox[:size]
            if kind == b"HEL" and not self._hello(frame):
                return
            buf = Buffer(frame)
            header = header_from_binary(buf)
            try:
                self.messages.put_nowait((header, buf))
            except asyncio.QueueFull:
                self._refuse(S.BadTcpServerTooBusy, f"more than {self.messages.maxsize} messages queued")
                return
            if self.messages.qsize() >= _QUEUE_PAUSE:
                self._pause("queue")

    def _pause(self, why: str) -> None:
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._paused.add(why)

    def _resume(self, why: str) -> None:
        if why not in self._paused:
            return
        self._paused.discard(why)
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self._parse()  # what arrived before the pause first
            if not self._paused:
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self._guard is not None:
            self._pause("writes")

    def resume_writing(self) -> None:
        if self._guard is not None:
            self._resume("writes")

    def _check(self, kind: bytes, size: int) -> tuple[int, str] | None:
        if kind == b"HEL":
            if self._hello_seen:
                return S.BadTcpMessageTypeInvalid, "a second HEL"
            if not _HELLO_MIN <= size <= _HELLO_MAX:
                return S.BadTcpMessageTooLarge, f"a HEL of {size} bytes"
            return None
        if kind not in _SECURE:
            return S.BadTcpMessageTypeInvalid, f"message type {kind!r}"
        if not self._hello_seen:
            return S.BadTcpMessageTypeInvalid, f"{kind.decode()} before HEL"
        if size > self._chunk_limit:
            return S.BadTcpMessageTooLarge, f"a {kind.decode()} chunk of {size} bytes (limit {self._chunk_limit})"
        if size < _SECURE_MIN:
            return S.BadTcpMessageTypeInvalid, f"a {kind.decode()} chunk of {size} bytes"
        return None

    def _hello(self, frame: bytes) -> bool:
        try:
            hello = struct_from_binary(ua.Hello, Buffer(frame[8:]))
        except Exception:
            self._refuse(S.BadTcpMessageTypeInvalid, "an undecodable HEL")
            return False
        if hello.ReceiveBufferSize < MIN_BUFFER_SIZE or hello.SendBufferSize < MIN_BUFFER_SIZE:
            self._refuse(
                S.BadConnectionRejected,
                f"HEL buffer sizes {hello.ReceiveBufferSize}/{hello.SendBufferSize} below {MIN_BUFFER_SIZE}",
            )
            return False
        assert self.processor is not None
        self._chunk_limit = min(int(hello.SendBufferSize), self.processor._limits.max_recv_buffer)
        self._hello_seen = True
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        return True

    def _refuse(self, code: int, why: str, count: bool = True) -> None:
        log.warning("closing connection from %s: %s", self.peer_name, why)
        if count and self._guard is not None:
            self._guard.rejected += 1
        self._inbox = bytearray()
        if self.transport is not None:
            _send_error(self.transport, code, why)
            self.transport.close()

    async def _process_one_msg(self, header: Any, buf: Buffer) -> bool:
        if self._guard is None:
            return await super()._process_one_msg(header, buf)
        try:
            result = await super()._process_one_msg(header, buf)
        except Exception as exc:  # a chunk the secure channel cannot decode or verify: Part 6 says close
            self._refuse(S.BadDecodingError, f"undecodable {header.MessageType!r} chunk ({type(exc).__name__})")
            return False
        if self.messages.qsize() <= _QUEUE_RESUME:
            self._resume("queue")
        await asyncio.sleep(0)  # one message, then the other connections get a turn
        return result


def _send_error(transport: asyncio.BaseTransport, code: int, reason: str) -> None:
    if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
        transport.write(uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(code), reason)))


def install_connection_guard(
    server: Server,
    guard: ConnectionGuard,
    max_chunk_size: int,
    max_message_size: int,
) -> None:
    """Guard `server`'s listener (call before `server.start()`); other servers in the process are unaffected."""
    iserver: InternalServer = server.iserver
    iserver.connection_guard = guard
    iserver.max_pending_activation_seconds = guard.activation_timeout_s
    iserver.max_connections = guard.max_connections + 1  # the guard refuses first, and says why
    server.limits = TransportLimits(
        max_recv_buffer=max_chunk_size,
        max_send_buffer=max_chunk_size,
        max_chunk_count=math.ceil(max_message_size / max_chunk_size),
        max_message_size=max_message_size,
    )
    if binary_server_asyncio.OPCUAProtocol is OPCUAProtocol:
        binary_server_asyncio.OPCUAProtocol = GuardedProtocol


# ---- 11. Enum values a client may send out of range ----------------------------------------------------------------
# Why: asyncua decodes an enum field with `EnumClass(value)`, so a Browse whose BrowseDirection is 3 raised
# ValueError while the request was decoded and the client got a ServiceFault BadInternalError, not the
# BadBrowseDirectionInvalid per node that Part 4 asks for (the browse service answers that for anything but
# Forward/Inverse/Both). A `_missing_` hook lets such a value decode as a pseudo-member (name "Invalid<n>") that
# equals no real member. Read against asyncua 2.1.0: ua_binary.create_enum_deserializer -> uatype(Int32).


def tolerate_unknown_values(enum: type[Any]) -> None:
    """Let `enum(n)` return a pseudo-member for an unknown int n instead of raising (idempotent)."""
    if getattr(enum, "_bridge_tolerant", False):
        return

    def _missing_(cls: type[Any], value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"Invalid{value}"
        member._value_ = value
        return member

    enum._missing_ = classmethod(_missing_)
    enum._bridge_tolerant = True


# ---- 12. Log records of asyncua the bridge rewrites ------------------------------------------------------------------
# Why: asyncua logs a client's refusal as a server ERROR ("sending service fault response" from uaprocessor,
# "Rejected active session UserIdentityToken not supported" from internal_session) and a taken port as a traceback
# ("error starting server" from server). bridge/runtime/logs.py (ClientFaultFilter) matches these by logger name and
# message format; it lives there because it is installed before any command imports asyncua. Read against asyncua
# 2.1.0; tests/unit/test_logs.py checks the message formats are still in asyncua's source.


# ---- 13. Alarms & Conditions: events to monitored items --------------------------------------------------------------
# Why: asyncua sends an event only to items monitoring exactly its `emitting_node`, evaluates OfType as equality (no
# subtypes), and its ConditionRefresh replays to every item of a subscription. The bridge's condition events travel
# a notifier chain and answer select/where clauses with their own evaluator (bridge/opcua/alarms/delivery.py), so
# it reads a subscription's event items itself and queues each EventFieldList the way asyncua's trigger path does.
# Read against asyncua 2.1.0: MonitoredItemService._monitored_events (notifier NodeId -> item ids) and
# ._monitored_items (id -> MonitoredItemData: filter, client_handle, queue_size, mode);
# InternalSubscription.enqueue_event(mid, eventdata, maxsize) and .session_id.


def event_items_of(subscription: Any) -> tuple[dict[ua.NodeId, list[int]], dict[int, Any]]:
    """(notifier NodeId -> monitored item ids, item id -> MonitoredItemData) of one InternalSubscription."""
    srv = subscription.monitored_item_srv
    return srv._monitored_events, srv._monitored_items


TOUCHPOINTS += [
    # 10. transport guard
    Touchpoint("10 transport guard", binary_server_asyncio, "OPCUAProtocol"),
    Touchpoint(
        "10 transport guard",
        OPCUAProtocol,
        "__init__",
        ("self", "iserver", "policies", "clients", "closing_tasks", "limits"),
    ),
    Touchpoint("10 transport guard", OPCUAProtocol, "connection_made", ("self", "transport")),
    Touchpoint("10 transport guard", OPCUAProtocol, "connection_lost", ("self", "ex")),
    Touchpoint("10 transport guard", OPCUAProtocol, "data_received", ("self", "data")),
    Touchpoint("10 transport guard", OPCUAProtocol, "_activation_watchdog", ("self",)),
    Touchpoint("10 transport guard", OPCUAProtocol, "_process_one_msg", ("self", "header", "buf")),
    *(
        InstanceAttribute("10 transport guard", OPCUAProtocol, name)
        for name in ("iserver", "transport", "processor", "messages", "peer_name")
    ),
    *(
        InstanceAttribute("10 transport guard", InternalServer, name)
        for name in ("max_connections", "max_pending_activation_seconds")
    ),
    InstanceAttribute("10 transport guard", UaProcessor, "_limits"),
    InstanceAttribute("10 transport guard", Server, "limits"),
    *(
        Touchpoint("10 transport guard", TransportLimits, name)
        for name in ("max_recv_buffer", "max_send_buffer", "max_chunk_count", "max_message_size")
    ),
    # 11. enum values out of range
    Touchpoint("11 enum values out of range", ua_binary, "create_enum_deserializer", ("uatype",)),
    # 13. alarms & conditions
    Touchpoint(
        "13 alarms & conditions", InternalSubscription, "enqueue_event", ("self", "mid", "eventdata", "maxsize")
    ),
    *(
        InstanceAttribute("13 alarms & conditions", MonitoredItemService, name)
        for name in ("_monitored_items", "_monitored_events")
    ),
    *(
        InstanceAttribute("13 alarms & conditions", MonitoredItemData, name)
        for name in ("filter", "client_handle", "queue_size", "mode")
    ),
    InstanceAttribute("13 alarms & conditions", InternalSubscription, "session_id"),
]


# ---- 14. Slow service calls beside a connection's other requests, and the request's TimeoutHint --------------------
# Why: asyncua answers the requests of one connection strictly one after the other (OPCUAProtocol's message loop
# awaits UaProcessor.process for each). A Write, HistoryRead or Call that waits for a slow WinCC would hold up
# everything behind it on that connection, the client's keep-alive Read included, and the client drops the session
# (attack finding 6). Those three services run in a task of their own instead: among themselves they stay in order
# (one lock per connection, asyncio locks are first come first served, so two writes of one client reach WinCC in
# the order sent), while Read, Browse, Publish and the rest go on. Responses may then leave out of order, which OPC
# UA allows (a response names its request). The request's TimeoutHint becomes a deadline the service sees through
# `request_deadline()`: a call still queued when it passes is answered BadTimeout without being made.
# Read against asyncua 2.1.0: UaProcessor.process_message(seqhdr, body) decodes the type id and RequestHeader from
# body (a Buffer; copy() to peek) and returns False to close; send_response(handle, seqhdr, response); _closing,
# _transport.


_DETACHED = frozenset(
    ua.NodeId(i)
    for i in (
        ua.ObjectIds.WriteRequest_Encoding_DefaultBinary,
        ua.ObjectIds.HistoryReadRequest_Encoding_DefaultBinary,
        ua.ObjectIds.CallRequest_Encoding_DefaultBinary,
    )
)
# Detached calls one connection may have waiting; past this the connection waits, as asyncua itself would
MAX_DETACHED_PER_CONNECTION = 64
# Part of the TimeoutHint kept for the answer to reach the client before it gives up
_HINT_SHARE = 0.9

_deadline: ContextVar[float | None] = ContextVar("bridge_request_deadline", default=None)


def request_deadline() -> float | None:
    """time.monotonic() by which the request being served must be answered (from its TimeoutHint), or None."""
    return _deadline.get()


class ConcurrentServiceCalls:
    """Mixin for asyncua's UaProcessor (put it first in the bases): see the section comment above. Only sessions
    whose class says `concurrent_service_calls = True` (BridgeSession) are served this way; others as asyncua does."""

    session: Any
    _closing: bool
    _transport: Any

    async def process_message(self, seqhdr: Any, body: Any) -> Any:
        peek = body.copy()
        typeid = nodeid_from_binary(peek)
        if typeid not in _DETACHED or not getattr(self.session, "concurrent_service_calls", False):
            return await super().process_message(seqhdr, body)  # type: ignore[misc]
        header = struct_from_binary(ua.RequestHeader, peek)
        deadline = time.monotonic() + header.TimeoutHint / 1000 * _HINT_SHARE if header.TimeoutHint else None
        calls: set[asyncio.Task[None]] = self.__dict__.setdefault("_bridge_calls", set())
        if len(calls) >= MAX_DETACHED_PER_CONNECTION:
            token = _deadline.set(deadline)
            try:
                async with self._bridge_serial():
                    return await super().process_message(seqhdr, body)  # type: ignore[misc]
            finally:
                _deadline.reset(token)
        task = asyncio.create_task(self._detached(seqhdr, body, header, deadline), name="ua-service-call")
        calls.add(task)
        task.add_done_callback(calls.discard)
        return True

    def _bridge_serial(self) -> asyncio.Lock:
        lock: asyncio.Lock = self.__dict__.setdefault("_bridge_lock", asyncio.Lock())
        return lock

    async def _detached(self, seqhdr: Any, body: Any, header: ua.RequestHeader, deadline: float | None) -> None:
        _deadline.set(deadline)  # this task's own context: no other request sees it
        lock = self._bridge_serial()
        await lock.acquire()  # the call ahead is bounded by its own deadline or the write timeout
        if deadline is not None and time.monotonic() >= deadline:
            lock.release()
            fault = ua.ServiceFault()
            fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadTimeout)
            self.send_response(header.RequestHandle, seqhdr, fault)  # type: ignore[attr-defined]
            return
        try:
            ok = await super().process_message(seqhdr, body)  # type: ignore[misc]
        except Exception:  # asyncua's own handler catches what a service raises; this is the loop's last net
            log.exception("service call failed")
            ok = True
        finally:
            lock.release()
        if not ok and not self._closing:
            self._transport.close()  # what asyncua's message loop does when processing says stop


# ---- 15. Password checks beside the event loop ----------------------------------------------------------------------
# Why: asyncua calls UserManager.get_user synchronously inside InternalSession.activate_session, itself called
# without await by the processor, so a scrypt check (~60 ms of CPU) held the event loop: ten logins at once stalled
# every other client for over a second. Before asyncua's ActivateSession branch runs, this processor peeks at the
# request, decrypts the user name token as asyncua will, and enters the user manager's
# `checked_off_loop(session_name, username, password)` (BridgeUserManager has one) around asyncua's own handling;
# the manager checks the password on its threads and get_user takes that verdict. Everything else (the session
# lookup, the client signature, the refusal codes) stays asyncua's. A request this cannot read is left to asyncua,
# which answers it as before. Read against asyncua 2.1.0: UaProcessor._process_message(typeid, requesthdr, seqhdr,
# body) with body a Buffer (copy() to peek); ActivateSessionParameters.UserIdentityToken; UaProcessor.session, else
# InternalServer.lookup_external_session(AuthenticationToken) on a reconnect; InternalServer.decrypt_user_token(
# isession, token) -> (username, password); InternalServer.user_manager; InternalSession.name.

_ACTIVATE_SESSION_REQUEST = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)


class OffLoopLogin(UaProcessor):
    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        checked = getattr(self.iserver.user_manager, "checked_off_loop", None)
        credentials = self._user_name_login(requesthdr, body) if typeid == _ACTIVATE_SESSION_REQUEST else None
        if checked is None or credentials is None:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        async with checked(*credentials):
            return await super()._process_message(typeid, requesthdr, seqhdr, body)

    def _user_name_login(self, requesthdr: Any, body: Any) -> tuple[Any, str, str] | None:
        """(session name, user name, password) of an ActivateSession with a user name token, or None."""
        try:
            params = struct_from_binary(ua.ActivateSessionParameters, body.copy())
            token = params.UserIdentityToken
            if not isinstance(token, ua.UserNameIdentityToken) or token.UserName is None:
                return None
            session = self.session or self.iserver.lookup_external_session(requesthdr.AuthenticationToken)
            if session is None:
                return None
            username, password = self.iserver.decrypt_user_token(session, token)
        except Exception:  # whatever is wrong, asyncua's own branch finds it again and answers it
            return None
        return session.name, username, password or ""


class BridgeProcessor(ConcurrentServiceCalls, ObservedProcessor, OffLoopLogin):
    """The processor the bridge installs (install_request_observer): BrowseNext (section 5), the request context
    (section 8), slow service calls beside a connection's other requests (section 14) and password checks beside
    the event loop (section 15)."""


TOUCHPOINTS += [
    Touchpoint("14 service calls beside the others", UaProcessor, "process_message", ("self", "seqhdr", "body")),
    *(
        InstanceAttribute("14 service calls beside the others", UaProcessor, name)
        for name in ("_closing", "_transport")
    ),
    InstanceAttribute("14 service calls beside the others", InternalServer, "max_session_timeout_ms"),
    Touchpoint(
        "15 password checks beside the loop", InternalServer, "decrypt_user_token", ("self", "isession", "token")
    ),
    Touchpoint("15 password checks beside the loop", InternalServer, "lookup_external_session", ("self", "auth_token")),
    Touchpoint("15 password checks beside the loop", ua.ActivateSessionParameters, "UserIdentityToken"),
    InstanceAttribute("15 password checks beside the loop", InternalServer, "user_manager"),
    InstanceAttribute("15 password checks beside the loop", InternalSession, "name"),
]


# ---- 16. Attributes a node shares with others of its kind, copied on write ---------------------------------------
# Why: 11 of a tag Variable's 15 attributes (NodeId, NodeClass, DataType, ValueRank, AccessLevel, WriteMask...) are
# the same for every tag of its kind; as attribute objects of its own (~110 bytes each) in a 15-entry dict they were
# ~1.7 kB of the ~5 kB a tag cost. SharedAttributes holds a node's own attributes and falls back to a template of
# attributes shared by every node of the kind. A shared attribute is handed out as a TemplateAttribute view: reading
# it reads the shared one; whatever changes it (a Write, a value callback or setter, a monitored item's callback)
# first gives the node its own copy, so no change ever reaches another node.
# Read against asyncua 2.1.0: AddressSpace reaches a node's attributes only through `attr in node.attributes`,
# `node.attributes[attr]` and `node.attributes.get(attr)` (read/write_attribute_value, set_attribute_value_callback,
# set_attribute_value_setter, add/delete_datachange_callback, delete_nodes), then reads or sets value,
# value_callback and value_setter of what it got, or reads and fills its datachange_callbacks dict.


class _Callbacks:
    __slots__ = ("value_callback", "value_setter", "_callbacks")
    _callbacks: dict[int, Any] | None

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        cbs = self._callbacks
        if cbs is None:
            cbs = self._callbacks = {}
        return cbs


class LeanAttribute(_Callbacks):
    """SlimAttribute (section 2) without AttributeValue as its base, whose instance-dict support costs 40 bytes per
    object even with slots: 64 bytes. asyncua uses an attribute's four members, never its class."""

    __slots__ = ("value",)

    def __init__(self, value: ua.DataValue | None) -> None:
        self.value = value
        self.value_callback: Callable[[ua.NodeId, ua.AttributeIds], ua.DataValue] | None = None
        self.value_setter: Callable[..., None] | None = None
        self._callbacks: dict[int, Any] | None = None


class NameAttribute(_Callbacks):
    """A BrowseName, DisplayName or Description the node keeps as the bare name (the same object its parent's
    reference holds), its DataValue made on read: 152 bytes less than a stored DataValue and Variant. A Write
    stores the written DataValue as any attribute does."""

    __slots__ = ("_stored",)

    def __init__(self, name: ua.QualifiedName | ua.LocalizedText) -> None:
        self._stored: ua.QualifiedName | ua.LocalizedText | ua.DataValue | None = name
        self.value_callback: Callable[[ua.NodeId, ua.AttributeIds], ua.DataValue] | None = None
        self.value_setter: Callable[..., None] | None = None
        self._callbacks: dict[int, Any] | None = None

    @property
    def value(self) -> ua.DataValue | None:
        stored = self._stored
        if isinstance(stored, ua.QualifiedName):
            return ua.DataValue(ua.Variant(stored, ua.VariantType.QualifiedName))
        if isinstance(stored, ua.LocalizedText):
            return ua.DataValue(ua.Variant(stored, ua.VariantType.LocalizedText))
        return stored

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._stored = value


class SharedAttributes(dict[ua.AttributeIds, Any]):
    """A node's attributes: its own ones (the dict itself) over a template shared with nodes of its kind (never
    changed once a node uses it). Lookups, `in`, iteration and len() see both."""

    __slots__ = ("template",)

    def __init__(self, template: dict[ua.AttributeIds, Any]) -> None:
        super().__init__()
        self.template = template

    def __missing__(self, key: ua.AttributeIds) -> AttributeValue:
        shared = self.template.get(key)
        if shared is None:
            raise KeyError(key)
        return TemplateAttribute(self, key, shared)

    def get(self, key: ua.AttributeIds, default: Any = None) -> Any:
        own = dict.get(self, key)
        if own is not None:
            return own
        shared = self.template.get(key)
        return default if shared is None else TemplateAttribute(self, key, shared)

    def own(self, key: ua.AttributeIds) -> AttributeValue | None:
        """The node's own attribute (not one it shares), or None."""
        return dict.get(self, key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.template

    def keys(self) -> list[ua.AttributeIds]:  # type: ignore[override]
        return [*dict.keys(self), *(k for k in self.template if not dict.__contains__(self, k))]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def values(self) -> list[AttributeValue]:  # type: ignore[override]
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[ua.AttributeIds, AttributeValue]]:  # type: ignore[override]
        return [(k, self[k]) for k in self.keys()]


class TemplateAttribute(AttributeValue):
    """A node's view of a shared attribute: reads go to the shared one, changes to a copy the node gets first."""

    __slots__ = ("_attrs", "_key", "_shared")

    def __init__(self, attrs: SharedAttributes, key: ua.AttributeIds, shared: Any) -> None:
        # deliberately not calling super(): a view has no state of its own
        self._attrs, self._key, self._shared = attrs, key, shared

    def _current(self) -> AttributeValue:
        own = dict.get(self._attrs, self._key)
        return self._shared if own is None else own

    def _own(self) -> AttributeValue:
        own = dict.get(self._attrs, self._key)
        if own is None:
            shared = self._shared
            own = LeanAttribute(shared.value)
            own.value_callback = shared.value_callback
            own.value_setter = shared.value_setter
            dict.__setitem__(self._attrs, self._key, own)
        return own

    @property
    def value(self) -> ua.DataValue | None:
        return self._current().value

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._own().value = value

    @property
    def value_callback(self) -> Any:
        return self._current().value_callback

    @value_callback.setter
    def value_callback(self, callback: Any) -> None:
        self._own().value_callback = callback

    @property
    def value_setter(self) -> Any:
        return self._current().value_setter

    @value_setter.setter
    def value_setter(self, setter: Any) -> None:
        self._own().value_setter = setter

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        # asyncua adds a monitored item's callback to this dict: it must be the node's own
        return self._own().datachange_callbacks


class LeanNode:
    """asyncua's NodeData with slots (not a subclass, for the reason LeanAttribute gives): 64 bytes, not 104."""

    __slots__ = ("nodeid", "attributes", "references", "call")

    def __init__(self, nodeid: ua.NodeId, attributes: Any, references: list[ua.ReferenceDescription]) -> None:
        self.nodeid = nodeid
        self.attributes = attributes
        self.references = references
        self.call: Callable[..., Any] | None = None


def lean_node(nodeid: ua.NodeId, attributes: Any, references: list[ua.ReferenceDescription]) -> NodeData:
    """A node for the address space's node table, which asyncua types as NodeData and uses by its four members."""
    return cast(NodeData, LeanNode(nodeid, attributes, references))


def own_copy(attr: AttributeValue) -> AttributeValue:
    """`attr` itself, or for a view of a shared attribute a copy another node can own."""
    if not isinstance(attr, TemplateAttribute):
        return attr
    copy = LeanAttribute(attr.value)
    copy.value_callback, copy.value_setter = attr.value_callback, attr.value_setter
    return copy


TOUCHPOINTS += [
    *(
        Touchpoint("15 shared attributes", UaAddressSpace, name, params)
        for name, params in (
            ("read_attribute_value", ("self", "nodeid", "attr")),
            ("write_attribute_value", ("self", "nodeid", "attr", "value")),
            ("set_attribute_value_callback", ("self", "nodeid", "attr", "callback")),
            ("set_attribute_value_setter", ("self", "nodeid", "attr", "setter")),
            ("add_datachange_callback", ("self", "nodeid", "attr", "callback")),
            ("delete_datachange_callback", ("self", "handle")),
        )
    ),
    *(InstanceAttribute("15 shared attributes", NodeData, name) for name in ("nodeid", "attributes", "references")),
    Touchpoint("15 shared attributes", NodeData, "__init__", ("self", "nodeid")),
]
