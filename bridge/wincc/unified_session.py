"""The session and request side of dialect `unified`: every GraphQL query or mutation goes as `POST <wincc.url>`
`{"query", "variables"}` with a Bearer token from the `login` mutation.

Unified answers an expired or missing session with HTTP 200, the field `null` and an error whose
`extensions.code` is UNAUTHENTICATED: `call` logs in again once and repeats. The session is extended with
`extendSession` before it runs out, so a running bridge never meets that case in the first place. See
docs/wincc-rest-api.md, section Unified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from bridge.config import AuthConfig, WinCCConfig
from bridge.wincc.errors import WinCCBadAnswer, WinCCError, WinCCRejected, WinCCUnauthorized
from bridge.wincc.parse import parse_ts
from bridge.wincc.transport import SecretSink, Transport
from bridge.wincc.unified_wire import EXTEND_SESSION, LOGIN, error_code

__all__ = ["UnifiedSession"]

log = logging.getLogger(__name__)

# Extend the session this long before it runs out (at most a fifth of its life).
_EXTEND_MARGIN_S = 60.0
_UNAUTHENTICATED = "UNAUTHENTICATED"
_SESSION_GONE = (
    "unauthenticated",
    "not authenticated",
    "not logged in",
    "session expired",
    "session has expired",
    "invalid token",
    "token expired",
    "token is expired",
    "invalid session",
)


class _Session(httpx.Auth):
    """The Bearer header of every request: the current Unified session token (none before the first login)."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.expires: float = 0.0  # loop time
        self.generation = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class UnifiedSession:
    """A logged-in GraphQL endpoint: `call` runs one operation; the session is kept alive and renewed."""

    def __init__(
        self,
        config: WinCCConfig,
        transport: Transport | None = None,
        *,
        batch_size: int = 500,
        on_secret: SecretSink | None = None,
    ) -> None:
        self._config = config
        self._auth: AuthConfig = config.auth
        self._session = _Session()
        self._on_secret = on_secret
        # The transport does no auth of its own: Unified's session is a GraphQL mutation, not an HTTP scheme.
        # The endpoint's path is sent as the request path: httpx would append a slash to a base URL's path.
        url = httpx.URL(config.url)
        self._path = url.path.rstrip("/") or "/"
        plain = config.model_copy(update={"auth": AuthConfig(), "url": str(url.copy_with(path="/", query=None))})
        self._t = transport or Transport(plain, on_secret=on_secret, auth=self._session)
        self._batch = batch_size
        self._login_lock = asyncio.Lock()
        self._keepalive: asyncio.Task[None] | None = None
        if self._auth.password is not None and on_secret is not None:
            on_secret(self._auth.password.get_secret_value())

    async def aclose(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
            self._keepalive = None
        await self._t.aclose()

    @property
    def token(self) -> str | None:
        """The current session token (the WebSocket's connection_init carries it)."""
        return self._session.token

    def invalidate_session(self) -> None:
        """The server refused the token (e.g. the WebSocket closed with 4403): log in again on next use."""
        self._drop_session(self._session.generation)

    async def ensure_session(self) -> str | None:
        """Log in if there is no session yet; the token (None with auth mode none)."""
        if self._auth.mode != "none" and self._session.token is None:
            await self._login(self._session.generation)
        return self._session.token

    # -- GraphQL --------------------------------------------------------------------------------------------

    async def call(
        self, query: str, variables: Mapping[str, Any], field: str, *, kind: str = "read", retry: bool = True
    ) -> Any:
        """`data.<field>` of one operation. Raises WinCCError for the whole request (HTTP, top-level errors)."""
        relogged = False
        while True:
            generation = self._session.generation
            if self._auth.mode != "none" and self._session.token is None:
                await self._login(generation)
                generation = self._session.generation
            try:
                body = await self._t.request_json(
                    "POST",
                    self._path,
                    json={"query": query, "variables": dict(variables)},
                    retry=retry,
                    kind="write" if kind == "write" else "read",
                )
            except WinCCUnauthorized:  # HTTP 401: a gateway in front of the runtime refused the token
                if self._auth.mode == "none" or relogged:
                    raise
                relogged = True
                self._drop_session(generation)
                continue
            if not isinstance(body, dict):
                raise self._t.bad_answer("POST", self._path, f"{field}: answer is not an object")
            errors = body.get("errors") or []
            data = body.get("data")
            value = data.get(field) if isinstance(data, dict) else None
            if errors and _unauthenticated(errors) and self._auth.mode != "none" and not relogged:
                relogged = True
                self._drop_session(generation)
                continue
            if errors and value is None:
                if _unauthenticated(errors):
                    raise WinCCUnauthorized(f"{field}: not logged in (UNAUTHENTICATED)", status=200)
                raise WinCCRejected(f"{field}: {_error_text(errors)}", status=200)
            if value is None:
                raise self._t.bad_answer("POST", self._path, f"{field}: answer has no data.{field}")
            return value

    def _drop_session(self, generation: int) -> None:
        if self._session.generation == generation:
            self._session.token = None

    async def _login(self, generation: int) -> None:
        async with self._login_lock:
            if self._session.generation != generation and self._session.token is not None:
                return  # another caller logged in meanwhile
            password = self._auth.password.get_secret_value() if self._auth.password else ""
            self._session.token = None
            answer = await self._t.request_json(
                "POST",
                self._path,
                json={"query": LOGIN, "variables": {"username": self._auth.username, "password": password}},
                retry=True,
            )
            self._take_session(answer, "login")
            log.info("logged in to WinCC Unified as %s", self._auth.username)
            if self._keepalive is None or self._keepalive.done():
                self._keepalive = asyncio.create_task(self._keep_session(), name="wincc-unified-session")

    def _take_session(self, answer: Any, field: str) -> None:
        data = answer.get("data") if isinstance(answer, dict) else None
        session = data.get(field) if isinstance(data, dict) else None
        if not isinstance(session, dict):
            raise WinCCUnauthorized(f"{field}: {_error_text((answer or {}).get('errors') or [])}", status=200)
        error = session.get("error")
        if isinstance(error, dict) and error_code(error.get("code")) not in (0, None):
            # 101 wrong credentials, 102 UMC error: the description, never the credentials
            raise WinCCUnauthorized(f"{field} refused: {error.get('description') or error.get('code')}", status=200)
        token = session.get("token")
        if not isinstance(token, str) or not token:
            raise WinCCBadAnswer(f"{field}: answer has no token", status=200)
        if self._on_secret is not None:
            self._on_secret(token)
        life = 900.0
        try:
            expires = parse_ts(session.get("expires"))
            life = max(1.0, (expires - datetime.now(UTC)).total_seconds())
        except ValueError:
            log.warning("%s: session has no readable expiry; extending every %.0f s", field, life / 2)
        self._session.token = token
        self._session.expires = asyncio.get_running_loop().time() + life
        self._session.generation += 1

    async def _keep_session(self) -> None:
        """Extend the session before it expires; on failure log in again (the next call would anyway)."""
        loop = asyncio.get_running_loop()
        while True:
            left = self._session.expires - loop.time()
            await asyncio.sleep(max(0.5, left - min(_EXTEND_MARGIN_S, left / 5)))
            if self._session.token is None:
                continue
            try:
                answer = await self._t.request_json(
                    "POST", self._path, json={"query": EXTEND_SESSION, "variables": {}}, retry=True
                )
                self._take_session(answer, "extendSession")
            except WinCCError as exc:
                log.warning("WinCC Unified session could not be extended (%s); logging in again", exc)
                self._drop_session(self._session.generation)
                try:
                    await self._login(self._session.generation)
                except WinCCError as again:
                    log.warning("WinCC Unified login failed: %s", again)
                    self._session.expires = loop.time() + 5.0


def _unauthenticated(errors: Any) -> bool:
    """Whether GraphQL errors say the session is gone. `extensions.code` UNAUTHENTICATED is the convention of
    GraphQL servers; no public source shows what a Unified runtime sends, so its message text counts as well
    (the request is repeated after one new login only, so a wrong guess costs one login)."""
    if not isinstance(errors, list):
        return False
    for e in errors:
        if not isinstance(e, dict):
            continue
        extensions = e.get("extensions")
        if isinstance(extensions, dict) and str(extensions.get("code", "")).upper() == _UNAUTHENTICATED:
            return True
        message = str(e.get("message") or e.get("description") or "").lower()
        if any(words in message for words in _SESSION_GONE):
            return True
    return False


def _error_text(errors: Any) -> str:
    if isinstance(errors, list):
        texts = [
            str(e.get("message") or e.get("description"))
            for e in errors
            if isinstance(e, dict) and (e.get("message") or e.get("description"))
        ]
        if texts:
            return "; ".join(texts)[:300]
    return "request failed"
