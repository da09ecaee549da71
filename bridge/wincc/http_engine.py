"""The HTTP engine under the transport: sends one `httpx.Request`, answers one fully read `httpx.Response`.

The transport above speaks httpx's request/response/auth model (bridge/wincc/transport.py, auth.py); this module
is the only place that knows what moves the bytes. The default is `AiohttpEngine`, on aiohttp's connection pool
and C HTTP parser. httpx's own transport (h11, pure Python) is kept as the fallback, chosen with
`WINCC_BRIDGE_HTTP=httpx`; the REST client's respx unit tests use it, because respx mocks httpx's transport.

Why not httpx's client: polling is the bridge's steady-state cost, and at 1 % change/s nearly all of it is HTTP.
Measured on one batched read of 500 tags (a 14 KB request, a 60 KB answer; bench/README.md has the table): httpx's
client with its own transport ~1.2 ms of CPU, with httpx-aiohttp's transport ~0.95 ms, this engine driven directly
~0.7 ms, bare aiohttp ~0.6 ms. What remains of httpx (Request, Response, Auth flows) costs little; its client
(URL merging, header models, streams) is what was expensive.

aiohttp's errors are mapped onto httpx's classes so the transport keeps one error table: a refused connection
stays "unreachable" and a timeout stays "timeout" (httpx-aiohttp 0.2 maps both to ConnectTimeout), and a TLS
refusal keeps the ssl error as its cause so the transport can say what the certificate check refused.
"""

from __future__ import annotations

import os
import ssl
from importlib.metadata import PackageNotFoundError, version

import aiohttp
import httpx

__all__ = ["ENV", "AiohttpEngine", "new_engine"]

ENV = "WINCC_BRIDGE_HTTP"

# Hop-by-hop or describing the wire form: the answer handed up is already de-chunked and decompressed.
_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _user_agent() -> str:
    try:
        return f"wincc-opcua-bridge/{version('wincc-opcua-bridge')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "wincc-opcua-bridge"


class AiohttpEngine(httpx.AsyncBaseTransport):
    """httpx's transport interface on one aiohttp session: keep-alive pool of `max_connections`, TLS per `verify`."""

    def __init__(self, *, verify: bool | ssl.SSLContext = True, max_connections: int = 4) -> None:
        # aiohttp: True = the default context, False = no check, or a context of ours
        self._ssl: bool | ssl.SSLContext = verify
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"User-Agent": _user_agent()}

    def _open(self) -> aiohttp.ClientSession:
        # made on first use: an aiohttp session belongs to the running event loop
        connector = aiohttp.TCPConnector(limit=self._max, ssl=self._ssl)
        self._session = aiohttp.ClientSession(connector=connector, headers=self._headers, auto_decompress=True)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        t = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.get("connect"), sock_read=t.get("read"))
        headers = [(k, v) for k, v in request.headers.multi_items() if k not in ("host", "content-length")]
        try:
            async with session.request(
                request.method,
                str(request.url),
                data=request.content or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in _DROPPED]
                return httpx.Response(answer.status, headers=kept, content=content, request=request)
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, request) from _cause(exc)
        except TimeoutError:  # aiohttp raises the bare one in some paths (e.g. while connecting)
            raise httpx.ReadTimeout("no answer in time", request=request) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _as_httpx(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    # most specific first: aiohttp's connection-timeout and certificate errors are also ClientConnectorErrors /
    # ClientConnectionErrors, and its read timeout is a ClientConnectionError too
    text = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, no route, DNS, TLS handshake or certificate
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not HTTP
        return httpx.RemoteProtocolError(text, request=request)
    return httpx.ReadError(text, request=request)  # reset mid-answer and the other OS errors


def _cause(exc: aiohttp.ClientError) -> BaseException | None:
    """The ssl error behind a TLS refusal (the transport words its message from it), else nothing."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return exc.certificate_error
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ssl.SSLError):
        return exc.os_error
    return None


def new_engine(*, verify: bool | ssl.SSLContext, max_connections: int) -> httpx.AsyncBaseTransport:
    """The engine `WINCC_BRIDGE_HTTP` names: `aiohttp` (default) or `httpx`."""
    choice = os.environ.get(ENV, "aiohttp")
    if choice == "httpx":
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        return httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    if choice != "aiohttp":
        raise ValueError(f"{ENV}={choice!r}: expected aiohttp or httpx")
    return AiohttpEngine(verify=verify, max_connections=max_connections)
