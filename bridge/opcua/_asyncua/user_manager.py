"""Touchpoint 7: the user manager asyncua asks during ActivateSession."""

from __future__ import annotations

from asyncua.server.user_managers import UserManager

from bridge.opcua._asyncua.touchpoint import Touchpoint

__all__ = ["TOUCHPOINTS", "UserManager"]

# ---- 7. User manager -------------------------------------------------------------------------------------------------
# Why: Server(user_manager=...) takes a UserManager, whose get_user asyncua calls synchronously during
# ActivateSession. Read against asyncua 2.1.0: UserManager.get_user(iserver, username=, password=, certificate=).
# (UserManager is re-exported by the package.)

TOUCHPOINTS: list[Touchpoint] = [
    Touchpoint("7 user manager", UserManager, "get_user", ("self", "iserver", "username", "password", "certificate")),
]
