"""Users from the config, checked against scrypt hashes; never asyncua's permissive default manager.

- Username/password: constant-time check (an unknown name costs the same as a wrong password, so names cannot be
  probed by timing). Failed logins are logged with the user name only, never the password.
- Too many failures for one user name within a minute (`opcua.failed_login_limit`) lock that name for the rest
  of the minute. asyncua does not hand the client's address to the user manager, so the limit is per user name.
- Anonymous: admitted as a reader only when `opcua.anonymous: read`; otherwise refused (BadUserAccessDenied).
- Certificate identity tokens are not offered (see security.py); a certificate alone never logs anybody in.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from typing import Any

from asyncua.server.user_managers import UserManager

from bridge.config import OpcUaConfig, Role
from bridge.opcua.users import BridgeUser
from bridge.passwords import hash_password, verify_password

__all__ = ["BridgeUserManager"]

log = logging.getLogger(__name__)
_WINDOW_S = 60.0


class BridgeUserManager(UserManager):
    def __init__(self, config: OpcUaConfig) -> None:
        self._users = {u.name: u for u in config.users}
        self._anonymous = Role.reader if config.anonymous == "read" else None
        self._limit = config.failed_login_limit
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        # compared against when the name is unknown, so both paths cost one scrypt
        self._dummy_hash = hash_password("no such user")

    def __repr__(self) -> str:
        return f"BridgeUserManager(users={sorted(self._users)}, anonymous={self._anonymous})"

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> BridgeUser | None:
        if username is None:
            if self._anonymous is None:
                log.info("anonymous login refused (opcua.anonymous: none)")
                return None
            return BridgeUser.anonymous(self._anonymous)
        now = time.monotonic()
        failures = self._failures[username]
        while failures and now - failures[0] > _WINDOW_S:
            failures.popleft()
        if len(failures) >= self._limit:
            log.warning("login for user %r refused: %d failed attempts in the last minute", username, len(failures))
            return None
        user = self._users.get(username)
        stored = user.password_hash.get_secret_value() if user is not None else self._dummy_hash
        ok = verify_password(password or "", stored) and user is not None
        if not ok:
            failures.append(now)
            log.warning("failed login for user %r (%s)", username, "unknown user" if user is None else "wrong password")
            return None
        failures.clear()
        log.info("user %r logged in as %s", username, user.role.value)
        return BridgeUser.named(username, user.role)
