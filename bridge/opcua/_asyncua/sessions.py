"""Touchpoint 4: the bridge's own session class, created the way asyncua creates its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import Server, ua
from asyncua.server.address_space import AddressSpace as UaAddressSpace
from asyncua.server.address_space import AttributeService
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.monitored_item_service import MonitoredItemService

from bridge.opcua._asyncua.touchpoint import InstanceAttribute, Touchpoint

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


TOUCHPOINTS: list[Touchpoint] = [
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
