"""Every asyncua internal the bridge depends on, in one place.

asyncua's public API (`asyncua.Server`, `asyncua.ua`, `asyncua.crypto`, node methods) is used everywhere. What it
does not offer - bulk node building, a Bad value that keeps its last value, per-node write vetoes, BrowseNext, a
monitored item service that scales - the bridge gets by reaching into asyncua's server internals: private
attributes, internal classes it subclasses, private methods it overrides. Each such reach is a *touchpoint*, and
every touchpoint is here and nowhere else, one section each, saying why the bridge needs it and which asyncua
version it was read against. tests/unit/test_asyncua_touchpoints.py checks the names and signatures each section
relies on, so an asyncua upgrade that moves one fails there with the touchpoint's name instead of somewhere deep.

Adding a touchpoint: add a section (a heading comment, the why, "read against asyncua X"), import the internal
here, expose a small function or base class with a public name, and add its check to TOUCHPOINTS at the bottom.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.server import binary_server_asyncio
from asyncua.server.address_space import AddressSpace as UaAddressSpace
from asyncua.server.address_space import AttributeService, AttributeValue, NodeData
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemData, MonitoredItemService
from asyncua.server.uaprocessor import UaProcessor
from asyncua.server.user_managers import UserManager
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from asyncua.ua.ua_binary import from_binary, struct_from_binary, struct_to_binary

# what the binary decoder makes of a client's filter; ua.DataChangeFilter is a hand-written subclass of it, which
# only in-process code ever builds, so an isinstance check against ua.DataChangeFilter misses every client's filter
from asyncua.ua.uaprotocol_auto import DataChangeFilter

__all__ = [
    "TOUCHPOINTS", "AttributeValue", "DataChangeFilter", "InternalServer", "InternalSession", "ItemServiceBase",
    "MonitoredItemData", "NodeData", "SlimAttribute", "Touchpoint", "UaAddressSpace", "UserManager",
    "address_space", "bind_condition_refresh", "datachange_callbacks", "install_browse_next", "new_session",
    "node_table", "replace_item_service", "store_value", "subscriptions", "write_as",
    "NONE_POLICY_URI", "ObservedProcessor", "install_request_observer", "is_timeout_close", "monitored_item_count",
    "Buffer", "from_binary", "struct_to_binary",
]

ASYNCUA_VERSION = "2.1.0"  # what every section below was read against


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


# ---- 2. Slim attribute values --------------------------------------------------------------------------------------
# Why: asyncua's AttributeValue is 176 bytes with a dict of datachange callbacks per attribute (x15 per variable);
# the slotted subclass is 112 bytes and creates the dict on first use (most attributes are never monitored).
# Read against asyncua 2.1.0: AttributeValue has exactly value, value_callback, value_setter, datachange_callbacks,
# and asyncua calls value_callback(nodeid, attr) before looking at the stored value.

class SlimAttribute(AttributeValue):
    """asyncua's AttributeValue with slots, and the datachange callback dict created on first use."""

    __slots__ = ("value", "value_callback", "value_setter", "_callbacks")

    def __init__(self, value: ua.DataValue | None) -> None:  # noqa: D107 - deliberately not calling super()
        self.value = value
        self.value_callback = None
        self.value_setter = None
        self._callbacks: dict[int, Any] | None = None

    @property
    def datachange_callbacks(self) -> dict[int, Any]:  # type: ignore[override]
        cbs = self._callbacks
        if cbs is None:
            cbs = self._callbacks = {}
        return cbs


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
    return list(attval.datachange_callbacks.items())


# ---- 4. Sessions -----------------------------------------------------------------------------------------------------
# Why: asyncua's InternalSession answers Read/Write/HistoryRead/Browse/Call straight from its own services, with no
# per-node veto, no user check on HistoryRead and no BrowseNext; the bridge's BridgeSession (services/session.py)
# subclasses it and its BridgeInternalServer subclasses InternalServer to create them.
# Read against asyncua 2.1.0: InternalServer.create_session(name, user, external) and
# InternalSession(internal_server, aspace, submgr, name, user=, external=); the session attributes used are
# iserver, aspace, subscription_service, name, user, session_id; the service methods overridden are listed in
# SESSION_METHODS.

SESSION_METHODS = ("activate_session", "read", "write", "history_read", "browse", "browse_next", "call",
                   "create_subscription", "create_monitored_items", "modify_monitored_items",
                   "delete_monitored_items", "delete_subscriptions", "close_session")


def new_session(session_class: type[InternalSession], iserver: InternalServer, name: str, user: Any,
                external: bool) -> InternalSession:
    """A session of `session_class`, built the way InternalServer.create_session builds asyncua's own."""
    return session_class(iserver, iserver.aspace, iserver.subscription_service, name, user=user, external=external)


def subscriptions(server: Server) -> dict[int, Any]:
    """Subscription id -> asyncua's InternalSubscription, for every client subscription on the server."""
    subs: dict[int, Any] = server.iserver.subscription_service.subscriptions
    return subs


def replace_item_service(session: InternalSession, subscription_id: int,
                         factory: Callable[[Any, UaAddressSpace], MonitoredItemService]) -> None:
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
        binary_server_asyncio.UaProcessor = BrowseNextProcessor  # type: ignore[misc]


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
        return self._monitored_items  # type: ignore[return-value]

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


# ---- 7. User manager -------------------------------------------------------------------------------------------------
# Why: Server(user_manager=...) takes a UserManager, whose get_user asyncua calls synchronously during
# ActivateSession. Read against asyncua 2.1.0: UserManager.get_user(iserver, username=, password=, certificate=).
# (UserManager is re-exported above.)


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
        binary_server_asyncio.UaProcessor = ObservedProcessor  # type: ignore[misc]


def is_timeout_close(session: InternalSession, current: asyncio.Task[Any] | None) -> bool:
    """True when `current` (the running task) is the session's own idle watchdog, which closes timed-out sessions."""
    return current is not None and current is getattr(session, "_timeout_task", None)


def monitored_item_count(subscription: Any) -> int:
    """How many monitored items an InternalSubscription holds (asyncua has no public count)."""
    return len(subscription.monitored_item_srv._monitored_items)


# ---- 9. Pre-encoded history pages ---------------------------------------------------------------------------------
# Why: building a DataValue and a Variant per archived value and letting asyncua's generic serializer walk them
# cost more than reading the archive over REST; history/encode.py packs raw pages itself and hands asyncua an
# ExtensionObject whose Body is the encoded HistoryData (asyncua writes a Body as it is). struct_to_binary is the
# reference encoder (values the fast path does not pack, and the tests' byte-for-byte comparison); from_binary with
# Buffer decodes a page for in-process readers. Read against asyncua 2.1.0: extensionobject_to_binary(obj) encodes
# a ua.ExtensionObject (subclasses too) with struct_to_binary, i.e. TypeId, Encoding, Body; struct_to_binary(obj);
# from_binary(uatype, data); Buffer(data).


# ---- the checks (tests/unit/test_asyncua_touchpoints.py runs them) -------------------------------------------------

class Touchpoint:
    """One thing asyncua must still have for a section above to work: `check()` returns what is wrong, or ''."""

    def __init__(self, section: str, owner: Any, name: str, params: Iterable[str] | None = None) -> None:
        self.section, self.owner, self.name = section, owner, name
        self.params = tuple(params) if params is not None else None

    def __repr__(self) -> str:
        return f"{self.section}: {getattr(self.owner, '__name__', self.owner)}.{self.name}"

    def check(self) -> str:
        import inspect

        target = self.owner
        if not hasattr(target, self.name):
            return f"{self!r} is gone (asyncua {ASYNCUA_VERSION} had it)"
        if self.params is None:
            return ""
        value = inspect.getattr_static(target, self.name)
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        try:
            have = tuple(inspect.signature(value).parameters)
        except (TypeError, ValueError):
            return f"{self!r} has no signature to check"
        if have != self.params:
            return f"{self!r} takes {have}, the bridge calls it with {self.params} (read against {ASYNCUA_VERSION})"
        return ""


class InstanceAttribute(Touchpoint):
    """An attribute asyncua sets in __init__ (hasattr on the class cannot see it): looked up in the source."""

    def check(self) -> str:
        import inspect

        source = inspect.getsource(self.owner.__init__)
        if f"self.{self.name}" not in source:
            return f"{self!r}: {self.owner.__name__}.__init__ no longer sets it (asyncua {ASYNCUA_VERSION} did)"
        return ""


TOUCHPOINTS: list[Touchpoint] = [
    # 1. address space storage
    InstanceAttribute("1 address space storage", UaAddressSpace, "_nodes"),
    InstanceAttribute("1 address space storage", InternalServer, "aspace"),
    Touchpoint("1 address space storage", NodeData, "__init__", ("self", "nodeid")),
    InstanceAttribute("1 address space storage", NodeData, "attributes"),
    InstanceAttribute("1 address space storage", NodeData, "references"),
    # 2. slim attribute values
    Touchpoint("2 slim attribute values", AttributeValue, "__init__", ("self", "value")),
    *(InstanceAttribute("2 slim attribute values", AttributeValue, name)
      for name in ("value", "value_callback", "value_setter", "datachange_callbacks")),
    # 3. publishing a value
    Touchpoint("3 publishing a value", UaAddressSpace, "write_attribute_value", ("self", "nodeid", "attr", "value")),
    Touchpoint("3 publishing a value", UaAddressSpace, "add_datachange_callback", ("self", "nodeid", "attr",
                                                                                  "callback")),
    Touchpoint("3 publishing a value", UaAddressSpace, "delete_datachange_callback", ("self", "handle")),
    # 4. sessions
    Touchpoint("4 sessions", InternalServer, "create_session", ("self", "name", "user", "external")),
    Touchpoint("4 sessions", InternalSession, "__init__", ("self", "internal_server", "aspace", "submgr", "name",
                                                           "user", "external")),
    *(Touchpoint("4 sessions", InternalSession, name) for name in SESSION_METHODS if name != "browse_next"),
    Touchpoint("4 sessions", InternalSession, "browse_next", ("self", "parameters")),
    Touchpoint("4 sessions", InternalSession, "read", ("self", "params")),
    Touchpoint("4 sessions", InternalSession, "call", ("self", "params")),
    *(InstanceAttribute("4 sessions", InternalSession, name)
      for name in ("iserver", "aspace", "subscription_service", "name", "user", "session_id")),
    *(InstanceAttribute("4 sessions", InternalServer, name)
      for name in ("subscription_service", "attribute_service", "bind_condition_methods")),
    Touchpoint("4 sessions", AttributeService, "write", ("self", "params", "user")),
    # 5. BrowseNext dispatch
    Touchpoint("5 BrowseNext dispatch", binary_server_asyncio, "UaProcessor"),
    Touchpoint("5 BrowseNext dispatch", UaProcessor, "_process_message", ("self", "typeid", "requesthdr", "seqhdr",
                                                                          "body")),
    Touchpoint("5 BrowseNext dispatch", UaProcessor, "send_response", ("self", "requesthandle", "seqhdr",
                                                                       "response", "msgtype")),
    *(InstanceAttribute("5 BrowseNext dispatch", UaProcessor, name)
      for name in ("session", "_connection", "session_last_activity")),
    Touchpoint("5 BrowseNext dispatch", InternalSession, "is_activated"),
    Touchpoint("5 BrowseNext dispatch", InternalSession, "touch"),
    # 6. monitored item service
    Touchpoint("6 monitored item service", MonitoredItemService, "__init__", ("self", "isub", "aspace")),
    *(InstanceAttribute("6 monitored item service", MonitoredItemService, name)
      for name in ("_monitored_items", "_monitored_events", "_monitored_datachange", "_monitored_item_counter",
                   "isub", "aspace")),
    Touchpoint("6 monitored item service", MonitoredItemService, "_revise_queue_size", ("self", "requested")),
    Touchpoint("6 monitored item service", MonitoredItemService, "_create_data_change_monitored_item",
               ("self", "params")),
    Touchpoint("6 monitored item service", MonitoredItemService, "_modify_monitored_item", ("self", "params")),
    Touchpoint("6 monitored item service", MonitoredItemService, "_delete_monitored_items", ("self", "mid")),
    InstanceAttribute("6 monitored item service", InternalSubscription, "data"),
    Touchpoint("6 monitored item service", InternalSubscription, "enqueue_datachange_event",
               ("self", "mid", "eventdata", "maxsize")),
    InstanceAttribute("4 sessions", InternalSubscription, "monitored_item_srv"),
    Touchpoint("6 monitored item service", MonitoredItemService, "datachange_callback",
               ("self", "handle", "value", "error")),
    Touchpoint("6 monitored item service", MonitoredItemService, "trigger_datachange",
               ("self", "handle", "nodeid", "attr")),
    # 8. request context
    Touchpoint("8 request context", UaProcessor, "__init__", ("self", "internal_server", "transport", "limits")),
    InstanceAttribute("8 request context", UaProcessor, "iserver"),
    Touchpoint("8 request context", SecurityPolicyNone, "URI"),
    InstanceAttribute("8 request context", InternalSession, "_timeout_task"),
    Touchpoint("8 request context", ua.RequestHeader, "TimeoutHint"),
    # 9. pre-encoded history pages
    Touchpoint("9 pre-encoded history pages", ua_binary, "extensionobject_to_binary", ("obj",)),
    Touchpoint("9 pre-encoded history pages", ua_binary, "struct_to_binary", ("obj",)),
    Touchpoint("9 pre-encoded history pages", ua_binary, "from_binary", ("uatype", "data")),
    Touchpoint("9 pre-encoded history pages", ua.ExtensionObject, "Body"),
    # 7. user manager
    Touchpoint("7 user manager", UserManager, "get_user", ("self", "iserver", "username", "password",
                                                           "certificate")),
]
