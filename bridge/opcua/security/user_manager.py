"""Users from the config, checked against scrypt hashes; never asyncua's permissive default manager.

- Username/password: constant-time check (an unknown name costs the same scrypt as a wrong password, so names
  cannot be probed by timing). Failed logins are logged with the user name and client address, never the
  password.
- Failed logins are limited per client address, within a sliding minute: `opcua.failed_login_limit` failures
  for one user name from one address lock that name for that address; `_PER_HOST_FACTOR` times as many
  failures over all names lock the whole address (rotating names does not help). Another address can still
  log in as the same user, so nobody can lock `operator` out of the plant by mistyping on purpose. While a
  lock holds, logins from it are refused at once, without running scrypt (so a locked client cannot keep the
  event loop busy). The failure table is bounded: it holds only failures of the last minute, and at most
  `_MAX_TRACKED` keys (the oldest are forgotten first).
- scrypt runs beside the event loop, not on it: asyncua calls get_user synchronously, so its processor first awaits
  `checked_off_loop` (bridge/opcua/_asyncua/login.py), which runs the password check on `_CHECK_THREADS` threads of the
  manager's own and hands the verdict to get_user through a context variable. One check costs ~60 ms of CPU and
  16 MiB; ten logins at once used to stall every other client for over a second. At most `_MAX_WAITING` checks wait
  or run at a time; a login beyond that is answered BadServerTooBusy and counts as no failure (threads and memory
  stay bounded whatever arrives). Without a verdict (in-process callers), get_user checks on the spot as before.
- Anonymous: admitted as a reader only when `opcua.anonymous: read`; otherwise refused (BadUserAccessDenied).
- Certificate identity tokens are not offered (see security.py); a certificate alone never logs anybody in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asyncua import ua

from bridge.config import OpcUaConfig, Role
from bridge.opcua._asyncua import UserManager
from bridge.opcua.security.passwords import hash_password, verify_password
from bridge.opcua.security.users import BridgeUser, client_host, login_client

__all__ = ["BridgeUserManager", "FailedLogins"]

log = logging.getLogger(__name__)
_WINDOW_S = 60.0
_PER_HOST_FACTOR = 3
_MAX_TRACKED = 10_000
_UNKNOWN_HOST = "unknown address"
_NAME_CHARS = 64
_CHECK_THREADS = 2  # scrypt releases the GIL: two checks run while the loop serves everyone else
_MAX_WAITING = 32  # password checks running or queued; ~1 s of work at ~60 ms each on two threads

Key = str | tuple[str, str]


class FailedLogins:
    """Failure times of the last window per key ((host, name) or host), bounded in keys and times per key."""

    def __init__(
        self, window_s: float = _WINDOW_S, max_keys: int = _MAX_TRACKED, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window_s
        self._max_keys = max_keys
        self._clock = clock
        # ordered by last failure, oldest first: expiry and eviction both pop from the front
        self._times: OrderedDict[Key, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def locked_until(self, key: Key, limit: int) -> float | None:
        """The clock time until which `key` is locked (its `limit`-th last failure is inside the window)."""
        times = self._times.get(key)
        if times is None or len(times) < limit:
            return None
        until = times[-limit] + self._window
        return until if until > self._clock() else None

    def add(self, key: Key, keep: int) -> None:
        now = self._clock()
        self._expire(now)
        times = self._times.pop(key, None)
        if times is None:
            times = deque(maxlen=keep)
            while len(self._times) >= self._max_keys:
                self._times.popitem(last=False)
        times.append(now)
        self._times[key] = times

    def clear(self, key: Key) -> None:
        self._times.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._times:
            key, times = next(iter(self._times.items()))
            if now - times[-1] <= self._window:
                return
            del self._times[key]


def _shown(name: str) -> str:
    """A user name as logged: a client may send 100 KB of it on every attempt."""
    text = repr(name)
    return text if len(text) <= _NAME_CHARS else f"{text[:_NAME_CHARS]}...({len(name)} chars)"


def _key(name: str) -> str:
    """A user name as a key of the failure table: long ones by their digest, so 10,000 keys stay small."""
    return name if len(name) <= _NAME_CHARS else "#" + hashlib.blake2b(name.encode(errors="replace")).hexdigest()


def _digest(password: str) -> bytes:
    return hashlib.blake2b(password.encode(errors="surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True, repr=False)
class _Verdict:
    """A password check done off the loop, for the get_user call of the same ActivateSession (no secret kept)."""

    username: str
    password_digest: bytes
    stored: str  # the hash checked against: a reload meanwhile makes the verdict void
    matches: bool


_verdict: ContextVar[_Verdict | None] = ContextVar("bridge_password_verdict", default=None)


class BridgeUserManager(UserManager):
    def __init__(self, config: OpcUaConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._users = {u.name: u for u in config.users}
        self._rules = {name: tuple(patterns) for name, patterns in config.write_rules.items()}
        self._anonymous = Role.reader if config.anonymous == "read" else None
        self._limit = config.failed_login_limit
        self._host_limit = config.failed_login_limit * _PER_HOST_FACTOR
        self._failures = FailedLogins(clock=clock)
        self._clock = clock
        # compared against when the name is unknown, so both paths cost one scrypt
        self._dummy_hash = hash_password("no such user")
        self._checks = ThreadPoolExecutor(max_workers=_CHECK_THREADS, thread_name_prefix="password-check")
        self._waiting = 0

    def __repr__(self) -> str:
        return f"BridgeUserManager(users={sorted(self._users)}, anonymous={self._anonymous})"

    def reload(self, config: OpcUaConfig) -> None:
        """Take users, write rules, anonymous access and the login limit from a re-read config (SIGHUP). Sessions
        already open keep the rights they logged in with; failed logins counted so far still count."""
        self._users = {u.name: u for u in config.users}
        self._rules = {name: tuple(patterns) for name, patterns in config.write_rules.items()}
        self._anonymous = Role.reader if config.anonymous == "read" else None
        self._limit = config.failed_login_limit
        self._host_limit = config.failed_login_limit * _PER_HOST_FACTOR

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> BridgeUser | None:
        if username is None:
            if self._anonymous is None:
                log.warning("anonymous login refused (opcua.anonymous: none)")
                return None
            return BridgeUser.anonymous(self._anonymous)
        host = login_client.get() or _UNKNOWN_HOST
        if self._locked(host, username):
            return None
        user = self._users.get(username)
        stored = self._stored_hash(username)
        verdict = _verdict.get()
        if (
            verdict is not None
            and (verdict.username, verdict.stored) == (username, stored)
            and (verdict.password_digest == _digest(password or ""))
        ):
            matches = verdict.matches
        else:  # no check made off the loop for exactly this login (in-process callers): check here
            matches = verify_password(password or "", stored)
        ok = matches and user is not None
        if not ok:
            self._failures.add((host, _key(username)), keep=self._limit)
            self._failures.add(host, keep=self._host_limit)
            log.warning(
                "failed login for user %s from %s (%s)",
                _shown(username),
                host,
                "unknown user" if user is None else "wrong password",
            )
            return None
        assert user is not None  # `ok` says so
        self._failures.clear((host, _key(username)))  # the address's count over all names stays: no reset by one login
        log.info("user %r logged in as %s from %s", username, user.role.value, host)
        return BridgeUser.named(username, user.role, self._rules.get(username))

    @asynccontextmanager
    async def checked_off_loop(self, peer: object, username: str, password: str) -> AsyncIterator[None]:
        """Check `password` on the manager's threads; get_user calls made inside this context use the verdict
        instead of running scrypt on the event loop. `peer` is the session's name (the client's peername)."""
        host = client_host(peer)
        if self._is_locked(host, username):
            yield  # get_user refuses (and logs) without any check
            return
        if self._waiting >= _MAX_WAITING:
            log.warning(
                "login for user %s from %s refused: %d password checks are waiting already",
                _shown(username),
                host,
                self._waiting,
            )
            raise ua.UaStatusCodeError(ua.StatusCodes.BadServerTooBusy)
        stored = self._stored_hash(username)
        self._waiting += 1
        try:
            matches = await asyncio.get_running_loop().run_in_executor(self._checks, verify_password, password, stored)
        finally:
            self._waiting -= 1
        token = _verdict.set(_Verdict(username, _digest(password), stored, matches))
        try:
            yield
        finally:
            _verdict.reset(token)

    def _stored_hash(self, username: str) -> str:
        user = self._users.get(username)
        return user.password_hash.get_secret_value() if user is not None else self._dummy_hash

    def _is_locked(self, host: str, username: str) -> bool:
        return any(
            self._failures.locked_until(key, limit) is not None
            for key, limit in (((host, _key(username)), self._limit), (host, self._host_limit))
        )

    def _locked(self, host: str, username: str) -> bool:
        for key, limit, what in (
            ((host, _key(username)), self._limit, f"user {_shown(username)} from {host}"),
            (host, self._host_limit, f"every user from {host}"),
        ):
            until = self._failures.locked_until(key, limit)
            if until is not None:
                log.warning(
                    "login for user %s from %s refused: %d failed logins in the last minute lock %s for %.0f s more",
                    _shown(username),
                    host,
                    limit,
                    what,
                    until - self._clock(),
                )
                return True
        return False
