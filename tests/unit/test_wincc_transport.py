"""Transport: auth, re-login, retries, Retry-After, error mapping, and no secret in any log line or message."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import respx
from cryptography import x509

from bridge.config import WinCCConfig
from bridge.runtime.logs import RedactingFilter
from bridge.wincc import open_client
from bridge.wincc.dp import DpClient
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
from bridge.wincc.models import TagValue
from bridge.wincc.transport import PriorityLimiter, Transport, _retry_after
from tests.helpers import wait_until
from tests.tls_helpers import issue, make_ca, pem, write_server_files

BASE = "http://wincc.test:8700"
PASSWORD = "s3cret-PassW0rd"
TOKEN = "tok-ABCDEF-123456"
TS = "2026-11-24T10:15:30.250Z"


def cfg(monkeypatch: pytest.MonkeyPatch, mode: str = "token", **kw: object) -> WinCCConfig:
    monkeypatch.setenv("WINCC_TEST_PW", PASSWORD)
    auth = {"mode": mode}
    if mode != "none":
        auth |= {"username": "bridge", "password_env": "WINCC_TEST_PW"}
    base = {"url": BASE, "auth": auth, "retry": {"attempts": 3, "backoff_s": 0, "max_backoff_s": 1}}
    base |= kw
    return WinCCConfig.model_validate(base)


def read_ok(request: httpx.Request) -> httpx.Response:
    names = json.loads(request.content)["TagNames"]
    return httpx.Response(
        200, json={"Tags": [{"Name": n, "Value": 1, "Quality": 192, "Timestamp": TS, "Error": None} for n in names]}
    )


def login_ok(token: str = TOKEN, expires: int = 900) -> httpx.Response:
    return httpx.Response(200, json={"token": token, "expiresIn": expires})


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


async def test_token_login_and_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        login = mock.post("/api/auth/login").mock(return_value=login_ok())
        rm = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=read_ok)
        async with open_client(cfg(monkeypatch)) as client:
            await client.read(["a", "b"])
            await client.read(["b", "c"])
        assert login.call_count == 1
        assert json.loads(login.calls[0].request.content) == {"username": "bridge", "password": PASSWORD}
        assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rm.calls)


async def test_401_relogin_once_then_success(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        login = mock.post("/api/auth/login").mock(side_effect=[login_ok("t1"), login_ok("t2")])
        rm = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(
            side_effect=[httpx.Response(401), read_ok(httpx.Request("POST", BASE, json={"TagNames": ["a", "b"]}))]
        )
        async with open_client(cfg(monkeypatch)) as client:
            out = await client.read(["a", "b"])
        assert out["a"].value == 1
        assert login.call_count == 2
        assert [c.request.headers["Authorization"] for c in rm.calls] == ["Bearer t1", "Bearer t2"]


async def test_401_twice_raises_unauthorized_without_secrets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock(base_url=BASE) as mock:
        login = mock.post("/api/auth/login").mock(return_value=login_ok())
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(return_value=httpx.Response(401))
        async with open_client(cfg(monkeypatch)) as client:
            with pytest.raises(WinCCUnauthorized) as info:
                await client.read(["a", "b"])
        assert login.call_count == 2
    text = str(info.value) + repr(info.value)
    assert "401" in text and "/WinCC/REST/Tags/ReadMultiple" in text
    for secret in (PASSWORD, TOKEN):
        assert secret not in text
        assert secret not in caplog.text


async def test_login_refused(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock(base_url=BASE) as mock:
        mock.post("/api/auth/login").mock(return_value=httpx.Response(401, json={"error": "bad credentials"}))
        async with open_client(cfg(monkeypatch)) as client:
            with pytest.raises(WinCCUnauthorized) as info:
                await client.active_alarms()
    assert PASSWORD not in str(info.value) and PASSWORD not in caplog.text


async def test_relogin_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        # expiresIn 0: the token is due at once, so every request logs in first.
        login = mock.post("/api/auth/login").mock(side_effect=[login_ok("t1", 0), login_ok("t2", 0)])
        rm = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=read_ok)
        async with open_client(cfg(monkeypatch)) as client:
            await client.read(["a", "b"])
            await client.read(["a", "b"])
        assert login.call_count == 2
        assert rm.calls[1].request.headers["Authorization"] == "Bearer t2"


async def test_basic_auth_header(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock(base_url=BASE) as mock:
        rm = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=read_ok)
        async with open_client(cfg(monkeypatch, "basic")) as client:
            await client.read(["a", "b"])
        assert rm.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("status", "exc"),
    [(403, WinCCForbidden), (404, WinCCNotFound), (400, WinCCRejected), (409, WinCCRejected), (401, WinCCUnauthorized)],
)
async def test_status_mapping(monkeypatch: pytest.MonkeyPatch, status: int, exc: type[WinCCError]) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(return_value=httpx.Response(status, json={"error": "x"}))
        async with open_client(cfg(monkeypatch, "basic")) as client:
            with pytest.raises(exc) as info:
                await client.active_alarms()
        assert route.call_count == 1  # 4xx is never retried
    assert info.value.status == status
    assert "GET /api/alerts/active" in str(info.value) and str(status) in str(info.value)


async def test_500_retried_then_success(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(
            side_effect=[httpx.Response(500), httpx.Response(502), httpx.Response(200, json={"alerts": []})]
        )
        async with open_client(cfg(monkeypatch, "none")) as client:
            assert await client.active_alarms() == []
        assert route.call_count == 3


async def test_500_exhausts_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(return_value=httpx.Response(500))
        async with open_client(cfg(monkeypatch, "none")) as client:
            with pytest.raises(WinCCUnreachable) as info:
                await client.active_alarms()
        assert route.call_count == 3
    assert info.value.status == 500


async def test_backoff_grows_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(monkeypatch, "none", retry={"attempts": 5, "backoff_s": 1, "max_backoff_s": 2.5})
    sleeps = Sleeps()
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/alerts/active").mock(return_value=httpx.Response(503))
        async with DpClient(config, Transport(config, sleep=sleeps)) as client:
            with pytest.raises(WinCCUnreachable):
                await client.active_alarms()
    assert len(sleeps.calls) == 4
    assert 0.5 <= sleeps.calls[0] <= 1.5
    assert all(s <= 2.5 for s in sleeps.calls)


async def test_429_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(monkeypatch, "none", retry={"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 30})
    sleeps = Sleeps()
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"alerts": []})]
        )
        async with DpClient(config, Transport(config, sleep=sleeps)) as client:
            assert await client.active_alarms() == []
    assert route.call_count == 2
    assert sleeps.calls == [7.0]


async def test_429_exhausted_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(monkeypatch, "none")
    sleeps = Sleeps()
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/alerts/active").mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))
        async with DpClient(config, Transport(config, sleep=sleeps)) as client:
            with pytest.raises(WinCCRejected) as info:
                await client.active_alarms()
    assert info.value.status == 429
    assert sleeps.calls == [1.0, 1.0]


async def test_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(side_effect=httpx.ReadTimeout("slow"))
        async with open_client(cfg(monkeypatch, "none")) as client:
            with pytest.raises(WinCCTimeout) as info:
                await client.active_alarms()
        assert route.call_count == 3
    assert "/api/alerts/active" in str(info.value)


async def test_connection_refused_real_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, read the number, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = cfg(monkeypatch, "none", url=f"http://127.0.0.1:{port}", retry={"attempts": 2, "backoff_s": 0})
    async with open_client(config) as client:
        with pytest.raises(WinCCUnreachable) as info:
            await client.active_alarms()
    assert not isinstance(info.value, WinCCTimeout)
    assert "GET /api/alerts/active" in str(info.value)


async def test_connect_error_mocked(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(side_effect=httpx.ConnectError("refused"))
        async with open_client(cfg(monkeypatch, "none")) as client:
            with pytest.raises(WinCCUnreachable):
                await client.active_alarms()
        assert route.call_count == 3


async def test_malformed_json(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/alerts/active").mock(return_value=httpx.Response(200, content=b"{not json"))
        async with open_client(cfg(monkeypatch, "none")) as client:
            with pytest.raises(WinCCBadAnswer):
                await client.active_alarms()


@pytest.mark.parametrize("body", [[], {"alerts": "no"}, {"other": []}, 5, None])
async def test_wrong_shape(monkeypatch: pytest.MonkeyPatch, body: object) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/alerts/active").mock(return_value=httpx.Response(200, json=body))
        async with open_client(cfg(monkeypatch, "none")) as client:
            with pytest.raises(WinCCBadAnswer):
                await client.active_alarms()


async def test_writes_never_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.put("/api/dp/a").mock(return_value=httpx.Response(503))
        async with open_client(cfg(monkeypatch, "none")) as client:
            out = await client.write({"a": 1})
        assert route.call_count == 1
    assert out["a"].error == "unreachable"


async def test_acknowledge_never_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/api/alert/7/acknowledge").mock(return_value=httpx.Response(500))
        async with open_client(cfg(monkeypatch, "none")) as client:
            with pytest.raises(WinCCUnreachable):
                await client.acknowledge("7", "c", "u")
        assert route.call_count == 1


async def test_tls_verify_off_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.wincc.transport")
    client = open_client(cfg(monkeypatch, "none", url="https://wincc.test", tls={"verify": False}))
    await client.aclose()
    assert sum("verify" in r.getMessage() for r in caplog.records) == 1


async def test_concurrency_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 batches, max_concurrency 3: answers are held until 3 requests are in flight, so the test sees the cap
    reached, and never exceeded, without guessing a delay."""
    import asyncio

    in_flight = 0
    peak = 0
    full = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            full.set()
        await asyncio.wait_for(full.wait(), timeout=5)  # times out (fails) if the cap kept requests below 3
        in_flight -= 1
        return read_ok(request)

    with respx.mock(base_url=BASE) as mock:
        mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=held)
        async with open_client(cfg(monkeypatch, "none", max_concurrency=3), batch_size=10) as client:
            out = await client.read([f"t{i}" for i in range(200)])
    assert len(out) == 200 and all(isinstance(v, TagValue) for v in out.values())
    assert peak == 3


async def test_requests_per_second_paces(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(monkeypatch, "none", requests_per_second=4)
    sleeps = Sleeps()
    with respx.mock(base_url=BASE) as mock:
        mock.get("/api/alerts/active").mock(return_value=httpx.Response(200, json={"alerts": []}))
        async with DpClient(config, Transport(config, sleep=sleeps)) as client:
            for _ in range(3):
                await client.active_alarms()
    # the first request goes at once; the next ones wait for their slot (about 0.25 s apart)
    assert len(sleeps.calls) == 2
    assert all(0 < s <= 0.5 for s in sleeps.calls)


# ---- TLS against a real local TLS socket (no respx): what the operator is told when the certificate is refused


@dataclass
class TlsSite:
    """A site CA, and a TLS server on 127.0.0.1 answering every request with an empty alarm list."""

    ca: Path
    port: int


def _tls_pki(tmp: Path, san: x509.GeneralName, expired: bool = False) -> tuple[Path, ssl.SSLContext]:
    """A CA file and a server context whose certificate (issued by that CA) names only `san`."""
    ca_key, ca = make_ca()
    key, cert = issue(ca_key, ca, san, days=(-2, -1 / 24 if expired else 1))
    ca_path = tmp / "ca.pem"
    ca_path.write_bytes(pem(ca))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(*write_server_files(tmp, key, cert))
    return ca_path, server


async def _answer_alarms(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"alerts": []}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass  # the client gave up, e.g. after refusing the certificate
    finally:
        writer.close()


async def _plain_http_refuses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What a plain HTTP server does with a TLS ClientHello: answer 400 at once."""
    try:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def tls_site(
    tmp: Path, san: x509.GeneralName | None = None, tls: bool = True, expired: bool = False
) -> AsyncIterator[TlsSite]:
    ca, context = _tls_pki(tmp, san or x509.IPAddress(ipaddress.ip_address("127.0.0.1")), expired)
    if tls:
        server = await asyncio.start_server(_answer_alarms, "127.0.0.1", 0, ssl=context)
    else:
        server = await asyncio.start_server(_plain_http_refuses, "127.0.0.1", 0)
    try:
        yield TlsSite(ca=ca, port=server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def _tls_cfg(monkeypatch: pytest.MonkeyPatch, site: TlsSite, **tls: object) -> WinCCConfig:
    return cfg(
        monkeypatch,
        "basic",
        url=f"https://127.0.0.1:{site.port}",
        tls=tls,
        retry={"attempts": 1, "backoff_s": 0},
        timeouts={"connect_s": 5, "read_s": 5, "write_s": 5},
    )


def _no_secret(exc: BaseException) -> None:
    basic = base64.b64encode(f"bridge:{PASSWORD}".encode()).decode()
    for text in (str(exc), repr(exc), getattr(exc, "reason", "")):
        assert PASSWORD not in text and basic not in text


async def test_ca_file_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with tls_site(tmp_path) as site, open_client(_tls_cfg(monkeypatch, site, ca_file=str(site.ca))) as client:
        assert await client.active_alarms() == []


async def test_untrusted_certificate_is_named_as_such(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with tls_site(tmp_path) as site, open_client(_tls_cfg(monkeypatch, site)) as client:
        with pytest.raises(WinCCUnreachable) as info:
            await client.active_alarms()
    reason = info.value.reason
    assert reason.startswith("GET /api/alerts/active: TLS certificate not trusted (")
    assert "unable to get local issuer certificate" in reason and "wincc.tls.ca_file" in reason
    _no_secret(info.value)


async def test_certificate_for_another_host_is_named_as_such(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with (
        tls_site(tmp_path, san=x509.DNSName("wincc.example")) as site,
        open_client(_tls_cfg(monkeypatch, site, ca_file=str(site.ca))) as client,
    ):
        with pytest.raises(WinCCUnreachable) as info:
            await client.active_alarms()
    assert "TLS certificate does not match the host (" in info.value.reason and "127.0.0.1" in info.value.reason
    assert "wincc.url" in info.value.reason
    _no_secret(info.value)


async def test_expired_certificate_is_refused_as_expired(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with (
        tls_site(tmp_path, expired=True) as site,
        open_client(_tls_cfg(monkeypatch, site, ca_file=str(site.ca))) as client,
    ):
        with pytest.raises(WinCCUnreachable) as info:
            await client.active_alarms()
    assert info.value.reason == "GET /api/alerts/active: TLS certificate refused (certificate has expired)"


async def test_https_to_a_plain_http_port_is_a_tls_handshake_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with tls_site(tmp_path, tls=False) as site, open_client(_tls_cfg(monkeypatch, site)) as client:
        with pytest.raises(WinCCUnreachable) as info:
            await client.active_alarms()
    assert "GET /api/alerts/active: TLS handshake failed (" in info.value.reason
    assert "certificate" not in info.value.reason
    _no_secret(info.value)


async def test_write_401_relogin_then_forbidden(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock(base_url=BASE) as mock:
        login = mock.post("/api/auth/login").mock(return_value=login_ok())
        put = mock.put("/api/dp/a").mock(return_value=httpx.Response(401))
        async with open_client(cfg(monkeypatch)) as client:
            out = await client.write({"a": 1})
        assert login.call_count == 2 and put.call_count == 2
    assert out["a"].error == "forbidden"
    assert TOKEN not in out["a"].reason and TOKEN not in caplog.text and PASSWORD not in caplog.text


# -- Retry-After as an HTTP date ----------------------------------------------------------------------------------


def test_retry_after_both_forms() -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

    def after(value: str) -> float | None:
        return _retry_after(httpx.Response(429, headers={"Retry-After": value}), now)

    assert after(" 7 ") == 7.0
    assert after("-3") == 0.0
    assert after("Tue, 24 Nov 2026 10:01:30 GMT") == 90.0
    assert after("Tue, 24 Nov 2026 10:01:30 -0000") == 90.0  # no zone given: GMT, as HTTP dates always are
    assert after("Tue, 24 Nov 2026 11:01:30 +0100") == 90.0
    assert after("Mon, 23 Nov 2026 10:00:00 GMT") == 0.0  # in the past: at once, never negative
    assert after("soon") is None and after("") is None
    assert _retry_after(httpx.Response(429), now) is None


async def test_retry_after_http_date_is_honoured_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(monkeypatch, "none", retry={"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 30})
    sleeps = Sleeps()
    far = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/api/alerts/active").mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": far}),
                httpx.Response(503, headers={"Retry-After": past}),
                httpx.Response(200, json={"alerts": []}),
            ]
        )
        async with DpClient(config, Transport(config, sleep=sleeps)) as client:
            assert await client.active_alarms() == []
    assert route.call_count == 3
    assert sleeps.calls == [30.0, 0.0]  # an hour away is capped at max_backoff_s; a past date means now


# -- writes go ahead of queued reads ------------------------------------------------------------------------------


async def test_write_overtakes_queued_reads_and_cap_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(monkeypatch, "none", max_concurrency=1)
    gate = asyncio.Event()
    order: list[str] = []
    in_flight = peak = 0

    async def held(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        order.append(f"{request.method} {request.url.path}")
        await gate.wait()
        in_flight -= 1
        if request.method == "PUT":
            return httpx.Response(200, json={"name": "w", "value": 1})
        return httpx.Response(200, json={"name": "x", "value": 1, "quality": 192, "timestamp": TS})

    transport = Transport(config)
    with respx.mock(base_url=BASE) as mock:
        mock.get(url__regex=rf"{BASE}/api/dp/r\d").mock(side_effect=held)
        mock.put("/api/dp/w").mock(side_effect=held)
        async with DpClient(config, transport) as client:
            reads = [asyncio.create_task(client.read([f"r{i}"])) for i in range(5)]
            await wait_until(lambda: len(order) == 1 and transport.limiter.waiting == 4, what="4 reads queued")
            write = asyncio.create_task(client.write({"w": 1}))
            await wait_until(lambda: transport.limiter.waiting == 5, what="the write queued behind them")
            gate.set()
            results = await asyncio.gather(*reads, write)
    assert order == [
        "GET /api/dp/r0",
        "PUT /api/dp/w",
        "GET /api/dp/r1",
        "GET /api/dp/r2",
        "GET /api/dp/r3",
        "GET /api/dp/r4",
    ]
    assert peak == 1
    assert results[-1]["w"].ok and all(isinstance(r[f"r{i}"], TagValue) for i, r in enumerate(results[:5]))
    assert transport.limiter.free == 1 and transport.limiter.waiting == 0


async def test_limiter_cancelled_waiters_never_leak_a_slot() -> None:
    limiter = PriorityLimiter(1)
    await limiter.acquire("read")  # held
    got: list[str] = []

    async def take(kind: str, label: str) -> None:
        await limiter.acquire(kind)  # type: ignore[arg-type]
        got.append(label)

    queued_read = asyncio.create_task(take("read", "read"))
    queued_write = asyncio.create_task(take("write", "write"))
    await wait_until(lambda: limiter.waiting == 2)
    queued_write.cancel()  # cancelled while queued: leaves the queue
    await asyncio.gather(queued_write, return_exceptions=True)
    assert limiter.waiting == 1
    limiter.release()
    await asyncio.wait_for(queued_read, 5)
    assert got == ["read"] and limiter.free == 0

    # handed the slot and cancelled before it could run: the slot goes on to the next waiter
    first = asyncio.create_task(take("write", "first"))
    second = asyncio.create_task(take("read", "second"))
    await wait_until(lambda: limiter.waiting == 2)
    limiter.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it resumes
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 5)  # a leaked slot would leave it waiting for ever
    assert got == ["read", "second"]
    limiter.release()
    assert limiter.free == 1 and limiter.waiting == 0


# -- tokens never leak -------------------------------------------------------------------------------------------


async def test_tokens_go_to_on_secret_and_into_no_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    first, second = "tok-first-1111", "tok-second-2222"
    seen: list[str] = []
    redact = RedactingFilter()

    def on_secret(secret: str) -> None:
        seen.append(secret)
        redact.add(secret)

    with respx.mock(base_url=BASE) as mock:
        mock.post("/api/auth/login").mock(side_effect=[login_ok(first), login_ok(second)])
        rm = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(side_effect=[httpx.Response(401), read_ok])
        async with open_client(cfg(monkeypatch), on_secret=on_secret) as client:
            out = await client.read(["a", "b"])
        assert [c.request.headers["Authorization"] for c in rm.calls] == [f"Bearer {first}", f"Bearer {second}"]
    assert out["a"].value == 1
    assert PASSWORD in seen and first in seen and second in seen
    assert "logged in to WinCC as bridge" in caplog.text  # the user name is logged, nothing more
    for secret in (PASSWORD, first, second):
        assert secret not in caplog.text
    # the hook is what a RedactingFilter needs: a line that did carry a token would be written redacted
    caplog.handler.addFilter(redact)
    try:
        logging.getLogger("bridge.wincc.transport").warning("leak test %s", second)
    finally:
        caplog.handler.removeFilter(redact)
    assert second not in caplog.text and "leak test ***" in caplog.text


def test_basic_credentials_go_to_on_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    Transport(cfg(monkeypatch, "basic"), on_secret=seen.append)
    assert PASSWORD in seen and base64.b64encode(f"bridge:{PASSWORD}".encode()).decode() in seen
