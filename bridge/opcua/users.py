"""Who is on the other end of a session, in the bridge's roles (reader / operator / admin).

asyncua knows only Admin / User / Anonymous; `BridgeUser` adds the bridge role. Every permission check on the
UA side goes through `role_of(session.user)`, which answers None (no rights at all) for anything that is not a
BridgeUser, so a user object from asyncua's permissive default manager can never gain a right.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncua.crypto.permission_rules import User, UserRole

from bridge.config import Role

__all__ = ["BridgeUser", "role_of"]


@dataclass
class BridgeUser(User):
    access: Role | None = None  # None: authenticated for nothing

    @classmethod
    def named(cls, name: str, access: Role) -> BridgeUser:
        return cls(role=UserRole.Admin if access is Role.admin else UserRole.User, name=name, access=access)

    @classmethod
    def anonymous(cls, access: Role | None) -> BridgeUser:
        return cls(role=UserRole.Anonymous, name=None, access=access)

    @property
    def label(self) -> str:
        """The name written into audit lines and sent to WinCC as the acknowledging user."""
        return self.name or "anonymous"


def role_of(user: object) -> Role | None:
    return user.access if isinstance(user, BridgeUser) else None
