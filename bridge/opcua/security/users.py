"""Who is on the other end of a session, in the bridge's roles (reader / operator / admin).

asyncua knows only Admin / User / Anonymous; `BridgeUser` adds the bridge role and the tags the user may write
(`opcua.write_rules`), both fixed at login by the user manager. Every permission check on the UA side goes
through `role_of(session.user)` / `may_write(session.user, tag)`, which answer "no rights" for anything that is
not a BridgeUser, so a user object from asyncua's permissive default manager can never gain a right.

asyncua's `UserManager.get_user` is not told which client is logging in; `login_client` carries the client's
address from the session (see session.py) to the user manager, which limits failed logins per address.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from asyncua.crypto.permission_rules import User, UserRole

from bridge.config import Role

__all__ = ["BridgeUser", "client_host", "login_client", "login_from", "may_write", "role_of"]

# the host (IP) of the client whose ActivateSession is being handled; None outside a login
login_client: ContextVar[str | None] = ContextVar("login_client", default=None)


@dataclass
class BridgeUser(User):
    access: Role | None = None  # None: authenticated for nothing
    write_patterns: tuple[str, ...] | None = None  # glob patterns of tags this user may write; None = all

    @classmethod
    def named(cls, name: str, access: Role, write_patterns: tuple[str, ...] | None = None) -> BridgeUser:
        return cls(
            role=UserRole.Admin if access is Role.admin else UserRole.User,
            name=name,
            access=access,
            write_patterns=write_patterns,
        )

    @classmethod
    def anonymous(cls, access: Role | None) -> BridgeUser:
        return cls(role=UserRole.Anonymous, name=None, access=access)

    @property
    def label(self) -> str:
        """The name written into audit lines and sent to WinCC as the acknowledging user."""
        return self.name or "anonymous"


def role_of(user: object) -> Role | None:
    return user.access if isinstance(user, BridgeUser) else None


def may_write(user: object, tag_name: str) -> bool:
    """The one rule for writing a tag: a writing role, and the tag matches the user's write rules if any.
    Used by the Write service and by UserAccessLevel, so what a client is shown is what it may do."""
    role = role_of(user)
    if role is None or not role.can_write:
        return False
    patterns = user.write_patterns  # type: ignore[attr-defined]
    return patterns is None or any(fnmatch.fnmatchcase(tag_name, p) for p in patterns)


def client_host(peer: object) -> str:
    """The host part of asyncua's session name, which is the transport's peername: (ip, port[, flow, scope])."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


@contextmanager
def login_from(host: str) -> Iterator[None]:
    token = login_client.set(host)
    try:
        yield
    finally:
        login_client.reset(token)
