"""HTTP to WinCC: auth, concurrency cap, pacing, retries and error mapping over one keep-alive HTTP engine.

Both dialects speak through `Transport`; they never see httpx exceptions, only `WinCCError` subclasses. Requests and
answers are httpx's models and auth is an httpx.Auth flow, driven here; the bytes move through the engine of
bridge/wincc/http_engine.py (aiohttp by default: why, and what it saves, is said there).
Error messages are built from method, path (no query) and status only, so no credential or token can leak.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bridge.config import WinCCConfig
from bridge.runtime.backoff import backoff_delay
from bridge.wincc.auth import LOGIN_PATH, SecretSink, make_auth
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
from bridge.wincc.http_engine import new_engine
from bridge.wincc.limiter import Kind, PriorityLimiter
from bridge.wincc.parse import dumps, loads

__all__ = ["LOGIN_PATH", "PriorityLimiter", "SecretSink", "Transport", "dumps", "loads", "status_error"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Statuses worth asking again for: the server says so (429, 503), or (for idempotent requests) any server error.
_ALWAYS_RETRIED = frozenset({429, 503})


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


_JSON_HEADERS = {"Content-Type": "application/json"}


# The one status -> exception table; any other 4xx is WinCCRejected, any 5xx WinCCUnreachable.
_STATUS_ERRORS: dict[int, type[WinCCError]] = {401: WinCCUnauthorized, 403: WinCCForbidden, 404: WinCCNotFound}


def status_error(method: str, path: str, status: int) -> WinCCError:
    """The exception for a non-2xx status (message: method, path, status only)."""
    cls = _STATUS_ERRORS.get(status) or (WinCCUnreachable if status >= 500 else WinCCRejected)
    return cls(f"{method} {path} failed", status=status)


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
    """Send requests to one WinCC base URL. Use `request_json` for checked JSON answers, `send` to see the status.

    `send` is three layers, each wrapping the one below the way httpx layers its own send:
    `_send_with_retry` (429 / 503 / 5xx and connection errors, Retry-After, backoff) -> `_send_once` (one request:
    a slot of the concurrency cap, pacing, httpx errors mapped to WinCCError) -> `_send_with_auth` (the auth flow
    of bridge/wincc/auth.py: login, and one re-login on a 401) -> the engine.
    """

    def __init__(
        self,
        config: WinCCConfig,
        *,
        engine: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        on_secret: SecretSink | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self._config = config
        self._sleep = sleep
        self._limiter = PriorityLimiter(config.max_concurrency)
        self._pace_lock = asyncio.Lock()
        self._next_slot = 0.0
        t = config.timeouts
        self._timeouts: dict[Kind, httpx.Timeout] = {
            "read": httpx.Timeout(connect=t.connect_s, read=t.read_s, write=t.write_s, pool=None),
            "write": httpx.Timeout(connect=t.connect_s, read=t.write_s, write=t.write_s, pool=None),
        }
        if auth is None:  # `auth` replaces the config's scheme (the unified dialect's session is a GraphQL mutation)
            auth = make_auth(config, self._secret_sink(on_secret), status_error)
        self._auth = auth
        self._engine = engine if engine is not None else self._new_engine(config)
        base = httpx.URL(config.url)
        self._base = base
        self._base_path = base.raw_path.partition(b"?")[0].rstrip(b"/")
        self._urls: dict[str, httpx.URL] = {}
        # The path prefix of the base URL (restservice: /WinCCRestService), shown in messages.
        self._prefix = base.path.rstrip("/")

    @staticmethod
    def _secret_sink(on_secret: SecretSink | None) -> SecretSink:
        def tell(secret: str) -> None:
            if secret and on_secret is not None:
                on_secret(secret)

        return tell

    @staticmethod
    def _new_engine(config: WinCCConfig) -> httpx.AsyncBaseTransport:
        verify: bool | ssl.SSLContext = True
        if config.tls.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(config.tls.ca_file))
        if not config.tls.verify:
            log.warning("wincc.tls.verify is false: the WinCC server certificate is NOT checked")
            verify = False
        return new_engine(verify=verify, max_connections=config.max_concurrency)

    async def aclose(self) -> None:
        await self._engine.aclose()

    def _url(self, path: str, params: dict[str, Any] | None) -> httpx.URL:
        # `path` is already percent-encoded by the dialect (tag names in paths): joined raw, never re-encoded.
        # The URL of a path is built once; the set of paths is bounded by the tag list.
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._base.copy_with(raw_path=self._base_path + httpx.URL(path).raw_path)
        return url.copy_merge_params(params) if params else url

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
        response = await self._send_with_retry(method, path, params, json, kind, retry)
        if check and not 200 <= response.status_code < 300:
            raise status_error(method, f"{self._prefix}{path}", response.status_code)
        return response

    # -- layers ---------------------------------------------------------------------------------------------

    async def _send_with_retry(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any, kind: Kind, retry: bool
    ) -> httpx.Response:
        """429 and 503 are always asked again (the server asks for it); with `retry` (idempotent requests) also any
        5xx and a connection failure. Retry-After wins over the backoff, capped at retry.max_backoff_s."""
        r = self._config.retry
        attempts = r.attempts if retry else 1
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= attempts
            try:
                response = await self._send_once(method, path, params, json, kind)
            except WinCCUnreachable:
                if last:
                    raise
                wait = None
            else:
                status = response.status_code
                if last or not (status in _ALWAYS_RETRIED or (retry and status >= 500)):
                    return response
                wait = _retry_after(response) if status in _ALWAYS_RETRIED else None
            delay = backoff_delay(attempt, r.backoff_s, r.max_backoff_s) if wait is None else min(wait, r.max_backoff_s)
            await self._sleep(delay)

    async def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any, kind: Kind
    ) -> httpx.Response:
        shown = f"{self._prefix}{path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None} or None
        content = dumps(json) if json is not None else None
        headers = _JSON_HEADERS if content is not None else None
        # Paced inside the slot, so the pacing order is the limiter's (writes first), not the order of arrival.
        request = httpx.Request(
            method,
            self._url(path, clean),
            content=content,
            headers=headers,
            extensions={"timeout": self._timeouts[kind].as_dict()},
        )
        async with self._limiter.slot(kind):
            await self._pace()
            try:
                return await self._send_with_auth(request)
            except httpx.TimeoutException as exc:
                raise WinCCTimeout(f"{method} {shown}: no answer in time ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise WinCCUnreachable(f"{method} {shown}: {_failure(exc)}") from None

    async def _send_with_auth(self, request: httpx.Request) -> httpx.Response:
        """Drive the auth flow the way httpx's client does (its public Auth protocol): send what it yields, hand it
        each answer, return the last. The engine answers fully read, so nothing is left open between steps."""
        if self._auth is None:
            return await self._exchange(request)
        flow = self._auth.async_auth_flow(request)
        try:
            request = await flow.__anext__()
            while True:
                response = await self._exchange(request)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        response = await self._engine.handle_async_request(request)
        await response.aread()  # a no-op for the aiohttp engine; httpx's own transport answers a stream
        return response

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
