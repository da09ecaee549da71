"""How requests to WinCC authenticate, as httpx.Auth flows: HTTP Basic, or a login token (dp's `token` mode).

The token flow logs in before the first request and again shortly before the token runs out, and on a 401 logs in
once more and repeats the request; a second 401 goes back to the caller. Concurrent requests share one login.
Every secret (password, Basic credentials, each token) goes to `on_secret` before it is sent or stored, so log
redaction knows it before anything could print it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncGenerator, Callable

import httpx

from bridge.config import WinCCConfig
from bridge.wincc.errors import WinCCBadAnswer, WinCCError, WinCCUnauthorized
from bridge.wincc.parse import dumps, loads

__all__ = ["LOGIN_PATH", "SecretSink", "TokenAuth", "make_auth"]

log = logging.getLogger(__name__)

LOGIN_PATH = "/api/auth/login"
# Log in again this long before the token runs out (at most a tenth of its life), so a request never races expiry.
_REFRESH_MARGIN_S = 30.0
_DEFAULT_LIFE_S = 300.0  # a login answer without expiresIn

# Told every secret the transport learns or sends, e.g. the `add` of bridge.runtime.logs.RedactingFilter.
SecretSink = Callable[[str], None]
StatusError = Callable[[str, str, int], WinCCError]


class TokenAuth(httpx.Auth):
    """Bearer token from `POST /api/auth/login`, renewed before expiry and once on a 401."""

    requires_response_body = False

    def __init__(
        self,
        username: str,
        password: str,
        login_url: httpx.URL,
        shown_path: str,
        status_error: StatusError,
        on_secret: SecretSink,
    ) -> None:
        self._username = username
        self._password = password
        self._login_url = login_url
        self._shown = shown_path  # the login path as messages show it
        self._status_error = status_error
        self._on_secret = on_secret
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._deadline = 0.0

    def _valid(self) -> str | None:
        return self._token if self._token is not None and time.monotonic() < self._deadline else None

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = self._valid()
        if sent is None:
            async with self._lock:  # one login for every request that finds the token due
                sent = self._valid()
                if sent is None:
                    sent = self.accept(await _read((yield self.login_request(request))))
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            token = self._valid()
            if token is None or token == sent:  # nobody has logged in again since this request was sent
                token = self.accept(await _read((yield self.login_request(request))))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def login_request(self, request: httpx.Request) -> httpx.Request:
        body = dumps({"username": self._username, "password": self._password})
        return httpx.Request(
            "POST",
            self._login_url,
            content=body,
            headers={"Content-Type": "application/json"},
            extensions={k: v for k, v in request.extensions.items() if k == "timeout"},
        )

    def accept(self, response: httpx.Response) -> str:
        """The token of a login answer (stored, and told to on_secret first), or the WinCCError it means."""
        status = response.status_code
        if status == 401:
            raise WinCCUnauthorized(f"POST {self._shown}: login refused", status=401)
        if not 200 <= status < 300:
            raise self._status_error("POST", self._shown, status)
        try:
            body = loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise WinCCBadAnswer(f"POST {self._shown}: answer is not JSON", status=status) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise WinCCBadAnswer(f"POST {self._shown}: login answer has no token", status=status)
        expires = body.get("expiresIn")
        life = float(expires) if isinstance(expires, int | float) and not isinstance(expires, bool) else _DEFAULT_LIFE_S
        self._on_secret(token)  # before anything could log it
        self._token = token
        self._deadline = time.monotonic() + max(0.0, life - min(_REFRESH_MARGIN_S, life / 10))
        log.info("logged in to WinCC as %s (token valid %.0f s)", self._username, life)
        return token


async def _read(response: httpx.Response) -> httpx.Response:
    await response.aread()
    return response


def make_auth(config: WinCCConfig, on_secret: SecretSink, status_error: StatusError) -> httpx.Auth | None:
    """The httpx.Auth for `wincc.auth`, after telling on_secret every secret it will send."""
    auth = config.auth
    password = auth.password.get_secret_value() if auth.password else ""
    on_secret(password)
    user = auth.username or ""
    if auth.mode == "basic":
        on_secret(base64.b64encode(f"{user}:{password}".encode()).decode())  # as it travels in the header
        return httpx.BasicAuth(user, password)
    if auth.mode == "token":
        base = httpx.URL(config.url)
        prefix = base.path.rstrip("/")
        return TokenAuth(
            user, password, base.copy_with(path=prefix + LOGIN_PATH), prefix + LOGIN_PATH, status_error, on_secret
        )
    return None
