"""HTTP to WinCC: one keep-alive httpx client, auth, concurrency cap, pacing, retries and error mapping.

Both dialects speak through `Transport`; they never see httpx exceptions, only `WinCCError` subclasses.
Error messages are built from method, path (no query) and status only, so no credential or token can leak.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from bridge.config import WinCCConfig
from bridge.wincc.http_client import new_http_client
from bridge.wincc.parse import dumps, loads
from bridge.wincc.errors import (
    WinCCBadAnswer,
    WinCCError,
    WinCCForbidden,
    WinCCNotFound,
    WinCCRejected,
    WinCCTimeout,
    WinCCUnauthorized,
    WinCCUnreachable,
)

__all__ = ["LOGIN_PATH", "PriorityLimiter", "SecretSink", "Transport", "dumps", "loads"]

log = logging.getLogger(__name__)

LOGIN_PATH = "/api/auth/login"
# Log in again this long before the token runs out (at most a tenth of its life), so a request never races expiry.
_REFRESH_MARGIN_S = 30.0

Kind = Literal["read", "write"]
Sleep = Callable[[float], Awaitable[None]]
# Told every secret the transport learns or sends (password, Basic credentials, each new token), e.g. the
# `add` of bridge.runtime.logs.RedactingFilter, so log output can never show one even if it slipped into a message.
SecretSink = Callable[[str], None]


def _retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Retry-After in seconds from `now`, never negative: delta-seconds or an HTTP date. None if absent/unreadable."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    text = raw.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None  # neither form: fall back to our own backoff
    if when.tzinfo is None:  # RFC 9110 dates are GMT; email.utils leaves "-0000" naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class PriorityLimiter:
    """At most `limit` holders at once; when a slot frees, a waiting write gets it before any waiting read.

    Writes and acknowledges are what an operator waits for, while a poll cycle may queue dozens of batches: with
    one FIFO semaphore a write would wait behind all of them. A freed slot is handed straight to the next waiter
    (never put back for anyone to grab), so the order is exactly: writes first, then reads, each first come first
    served. A waiter cancelled while queued leaves the queue; one cancelled just after being handed a slot passes
    it on, so no slot ever leaks.
    """

    __slots__ = ("_free", "_queues")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._free = limit
        self._queues: dict[Kind, deque[asyncio.Future[None]]] = {"write": deque(), "read": deque()}

    @property
    def waiting(self) -> int:
        return sum(1 for q in self._queues.values() for f in q if not f.done())

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, kind: Kind) -> None:
        if self._free > 0:  # free slots mean nobody waits: release() hands slots to waiters first
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues[kind]
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot in the same instant we were cancelled: pass it on
            else:
                try:
                    queue.remove(fut)
                except ValueError:
                    pass  # release() already dropped it as done
            raise

    def release(self) -> None:
        for queue in self._queues.values():  # "write" first
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self._free += 1

    def slot(self, kind: Kind) -> _Slot:
        return _Slot(self, kind)


class _Slot:
    __slots__ = ("_kind", "_limiter")

    def __init__(self, limiter: PriorityLimiter, kind: Kind) -> None:
        self._limiter = limiter
        self._kind = kind

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._kind)

    async def __aexit__(self, *exc: object) -> None:
        self._limiter.release()


_JSON_HEADERS = {"Content-Type": "application/json"}


def status_error(method: str, path: str, status: int) -> WinCCError:
    """The exception for a non-2xx status (message: method, path, status only)."""
    reason = f"{method} {path} failed"
    if status == 401:
        return WinCCUnauthorized(reason, status=status)
    if status == 403:
        return WinCCForbidden(reason, status=status)
    if status == 404:
        return WinCCNotFound(reason, status=status)
    if status >= 500:
        return WinCCUnreachable(reason, status=status)
    return WinCCRejected(reason, status=status)


# OpenSSL's X509_V_ERR_* codes: the server's certificate chain ends in no CA we trust (unknown issuer,
# self-signed), or the certificate names another host / IP address than the one in wincc.url
_X509_UNTRUSTED = {2, 18, 19, 20, 21}
_X509_NAME_MISMATCH = {62, 64}


def _failure(exc: httpx.HTTPError) -> str:
    """Why a request got no answer, for the operator. The exception class, unless the cause is TLS: then what the
    TLS layer refused (OpenSSL's words about the server's certificate hold no secret) and which setting fixes it."""
    cause: BaseException | None = exc
    for _ in range(8):  # httpx.ConnectError <- httpcore.ConnectError <- ssl.SSLError; bounded against cycles
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = (cause.verify_message or "verification failed").rstrip(".")
            if cause.verify_code in _X509_UNTRUSTED:
                return f"TLS certificate not trusted ({detail}; set wincc.tls.ca_file to the CA that issued it)"
            if cause.verify_code in _X509_NAME_MISMATCH:
                return f"TLS certificate does not match the host ({detail}; check the host in wincc.url)"
            return f"TLS certificate refused ({detail})"  # e.g. expired, not yet valid, revoked
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or type(cause).__name__
            hint = "; does that port speak TLS?" if reason == "WRONG_VERSION_NUMBER" else ""
            return f"TLS handshake failed ({reason}{hint})"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


class Transport:
    """Send requests to one WinCC base URL. Use `request_json` for checked JSON answers, `send` to see the status."""

    def __init__(
        self,
        config: WinCCConfig,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        on_secret: SecretSink | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        """`auth` replaces the config's auth scheme (the unified dialect's session is a GraphQL mutation)."""
        self._config = config
        self._sleep = sleep
        self._on_secret = on_secret
        self._limiter = PriorityLimiter(config.max_concurrency)
        self._pace_lock = asyncio.Lock()
        self._next_slot = 0.0
        self._login_lock = asyncio.Lock()
        self._token: str | None = None
        self._token_deadline = 0.0
        self._token_generation = 0
        t = config.timeouts
        self._timeouts: dict[Kind, httpx.Timeout] = {
            "read": httpx.Timeout(connect=t.connect_s, read=t.read_s, write=t.write_s, pool=None),
            "write": httpx.Timeout(connect=t.connect_s, read=t.write_s, write=t.write_s, pool=None),
        }
        password = config.auth.password.get_secret_value() if config.auth.password else ""
        self._secret(password)
        if config.auth.mode == "basic":
            user = config.auth.username or ""
            auth = httpx.BasicAuth(user, password)
            self._secret(base64.b64encode(f"{user}:{password}".encode()).decode())  # as it travels in the header
        if client is None:
            verify: bool | ssl.SSLContext = True
            if config.tls.ca_file is not None:
                verify = ssl.create_default_context(cafile=str(config.tls.ca_file))
            if not config.tls.verify:
                log.warning("wincc.tls.verify is false: the WinCC server certificate is NOT checked")
                verify = False
            client = new_http_client(
                base_url=config.url,
                auth=auth,
                verify=verify,
                timeout=self._timeouts["read"],
                limits=httpx.Limits(max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency),
            )
        else:
            if auth is not None:
                client.auth = auth
        self._client = client
        # The path prefix of the base URL (restservice: /WinCCRestService), shown in messages.
        self._prefix = httpx.URL(config.url).path.rstrip("/")

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def limiter(self) -> PriorityLimiter:
        return self._limiter

    # -- public ---------------------------------------------------------------------------------------------

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        retry: bool = False,
        kind: Kind = "read",
    ) -> Any:
        """Send, raise the mapped WinCCError for a non-2xx, return the parsed JSON (WinCCBadAnswer if none)."""
        response = await self.send(method, path, params=params, json=json, retry=retry, kind=kind, check=True)
        return self.parse_json(method, path, response)

    def parse_json(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise WinCCBadAnswer(
                f"{method} {self._prefix}{path}: answer is not JSON", status=response.status_code
            ) from None

    def bad_answer(self, method: str, path: str, what: str, status: int | None = 200) -> WinCCBadAnswer:
        return WinCCBadAnswer(f"{method} {self._prefix}{path}: {what}", status=status)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        retry: bool = False,
        kind: Kind = "read",
        check: bool = True,
    ) -> httpx.Response:
        """One logical request: auth, cap, pacing, retries (only if `retry`), one re-login on 401.

        Transport failures always raise (WinCCTimeout / WinCCUnreachable); with `check` every non-2xx raises too,
        without it the caller gets the response (after retries and re-login) and maps the status itself."""
        attempts = self._config.retry.attempts if retry else 1
        shown = f"{self._prefix}{path}"
        relogged = False
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = await self._send_once(method, path, params, json, kind)
            except WinCCUnreachable:
                if attempt >= attempts:
                    raise
                wait = None
            else:
                status = response.status_code
                if status == 401 and self._config.auth.mode == "token" and not relogged:
                    relogged = True
                    attempt -= 1  # the re-login retry is not one of the configured attempts
                    self._invalidate_token()
                    continue
                if status in (429, 503) or (status >= 500 and retry):
                    if attempt >= attempts:
                        if check:
                            raise status_error(method, shown, status)
                        return response
                    wait = _retry_after(response) if status in (429, 503) else None
                else:
                    if check and not 200 <= status < 300:
                        raise status_error(method, shown, status)
                    return response
            await self._sleep(self._backoff(attempt) if wait is None else min(wait, self._config.retry.max_backoff_s))

    # -- internals ------------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        r = self._config.retry
        base = r.backoff_s * (2 ** (attempt - 1))
        # Full jitter around the exponential step keeps many bridges from retrying in lockstep.
        return min(r.max_backoff_s, base * random.uniform(0.5, 1.5))

    def _secret(self, secret: str) -> None:
        if secret and self._on_secret is not None:
            self._on_secret(secret)

    async def _pace(self) -> None:
        rps = self._config.requests_per_second
        if not rps:
            return
        async with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rps
        if slot > now:
            await self._sleep(slot - now)

    async def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any, kind: Kind
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if self._config.auth.mode == "token":
            headers["Authorization"] = f"Bearer {await self._ensure_token()}"
        # Paced inside the slot, so the pacing order is the limiter's (writes first), not the order of arrival.
        async with self._limiter.slot(kind):
            await self._pace()
            return await self._raw(method, path, params=params, json=json, headers=headers, kind=kind)

    async def _raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None,
        json: Any,
        headers: dict[str, str],
        kind: Kind,
    ) -> httpx.Response:
        shown = f"{self._prefix}{path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None} or None
        content = None
        if json is not None:
            content = dumps(json)
            headers = {**headers, **_JSON_HEADERS}
        try:
            return await self._client.request(
                method,
                path,
                params=clean,
                content=content,
                headers=headers,
                timeout=self._timeouts[kind],
            )
        except httpx.TimeoutException as exc:
            raise WinCCTimeout(f"{method} {shown}: no answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise WinCCUnreachable(f"{method} {shown}: {_failure(exc)}") from None

    def _invalidate_token(self) -> None:
        self._token = None
        self._token_deadline = 0.0

    async def _ensure_token(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < self._token_deadline:
            return token
        async with self._login_lock:
            if self._token is not None and time.monotonic() < self._token_deadline:
                return self._token
            return await self._login()

    async def _login(self) -> str:
        auth = self._config.auth
        password = auth.password.get_secret_value() if auth.password else ""
        # Every request waits for this login, so it goes ahead of queued reads like a write does.
        async with self._limiter.slot("write"):
            await self._pace()
            response = await self._raw(
                "POST",
                LOGIN_PATH,
                params=None,
                json={"username": auth.username, "password": password},
                headers={},
                kind="read",
            )
        shown = f"{self._prefix}{LOGIN_PATH}"
        if response.status_code == 401:
            raise WinCCUnauthorized(f"POST {shown}: login refused", status=401)
        if not 200 <= response.status_code < 300:
            raise status_error("POST", shown, response.status_code)
        body = self.parse_json("POST", LOGIN_PATH, response)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self.bad_answer("POST", LOGIN_PATH, "login answer has no token")
        expires = body.get("expiresIn")
        life = float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else 300.0
        margin = min(_REFRESH_MARGIN_S, life / 10)
        self._secret(token)  # before anything could log it
        self._token = token
        self._token_deadline = time.monotonic() + max(0.0, life - margin)
        self._token_generation += 1
        log.info("logged in to WinCC as %s (token valid %.0f s)", auth.username, life)
        return token
