"""HTTPS as the restservice dialect meets it in the field: a server certificate from a site CA (often self-made).
The simulator serves TLS with a certificate made here; the project's REST client must trust it only through
`tls.ca_file`, refuse it by default, and accept it with `verify: false` (loudly)."""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from bridge.config import WinCCConfig
from bridge.simulator import Simulator, SimulatorOptions
from bridge.wincc.client import open_client
from bridge.wincc.errors import WinCCUnreachable
from bridge.wincc.models import TagValue
from tests.helpers import free_port, wait_until_sync
from tests.tls_helpers import issue, make_ca, pem, write_server_files

PW = "tls-Pw-31"
NAMES = ["Tank1_Level", "Pump1_Speed"]


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the server certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("tls")
    ca_key, ca = make_ca("Site WinCC CA (test)")
    _, other = make_ca("Some other CA (test)")
    key, cert = issue(ca_key, ca, x509.IPAddress(ipaddress.ip_address("127.0.0.1")), cn="127.0.0.1")
    cert_path, key_path = write_server_files(tmp, key, cert)
    out = Pki(ca=tmp / "ca.pem", cert=cert_path, key=key_path, other_ca=tmp / "other-ca.pem")
    out.ca.write_bytes(pem(ca))
    out.other_ca.write_bytes(pem(other))
    return out


@pytest.fixture
async def sim(pki: Pki) -> AsyncIterator[Simulator]:
    s = Simulator(
        SimulatorOptions(dialect="restservice", port=0, auth="basic", password=PW, tls_cert=pki.cert, tls_key=pki.key)
    )
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(autouse=True)
def _pw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_TLS_PW", PW)


def client_for(sim: Simulator, tls: dict[str, Any]) -> Any:
    cfg = WinCCConfig.model_validate(
        {
            "url": sim.url,
            "dialect": "restservice",
            "tls": tls,
            "retry": {"attempts": 1},
            "timeouts": {"connect_s": 2, "read_s": 2, "write_s": 2},
            "auth": {"mode": "basic", "username": "opcua", "password_env": "SIM_TLS_PW"},
        }
    )
    return open_client(cfg)


async def test_the_site_ca_file_makes_the_certificate_trusted(sim: Simulator, pki: Pki) -> None:
    assert sim.url.startswith("https://127.0.0.1:")
    async with client_for(sim, {"ca_file": str(pki.ca)}) as client:
        values = await client.read(NAMES)
    assert all(isinstance(v, TagValue) for v in values.values())


async def test_default_verification_refuses_the_site_certificate(sim: Simulator, pki: Pki) -> None:
    for tls in ({}, {"verify": True}, {"ca_file": str(pki.other_ca)}):
        async with client_for(sim, tls) as client:
            with pytest.raises(WinCCUnreachable):
                await client.read(NAMES)
    # and the reason is the certificate, not the server: the same request with the site CA gets through
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(sim.url + "/tagManagement/Connections", auth=("opcua", PW))
    async with httpx.AsyncClient(timeout=2, verify=ssl.create_default_context(cafile=str(pki.ca))) as http:
        r = await http.get(sim.url + "/tagManagement/Connections", auth=("opcua", PW))
        assert r.status_code == 200
    assert sim.stats.requests["POST /tagManagement/Values"] == 0  # no refused read ever reached the simulator


async def test_verify_false_reads_and_warns(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.wincc"):
        async with client_for(sim, {"verify": False}) as client:
            values = await client.read(NAMES)
    assert all(isinstance(v, TagValue) for v in values.values())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "verify is false" in r.getMessage()]
    assert len(warnings) == 1 and "NOT checked" in warnings[0].getMessage()


def test_the_command_line_serves_https(pki: Pki, tmp_path: Path) -> None:
    """`python -m bridge.simulator --tls-cert --tls-key` in its own process; one of the two alone is refused."""
    port = free_port()
    base = [sys.executable, "-m", "bridge.simulator", "--port", str(port), "--dialect", "restservice"]
    half = subprocess.run([*base, "--tls-cert", str(pki.cert)], capture_output=True, text=True, timeout=30)
    assert half.returncode != 0 and "--tls-cert and --tls-key go together" in half.stderr
    log = tmp_path / "sim.log"
    proc = subprocess.Popen(
        [*base, "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )

    trust = ssl.create_default_context(cafile=str(pki.ca))

    def up() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return httpx.get(f"https://127.0.0.1:{port}/_sim/health", verify=trust, timeout=2).status_code == 200
        except httpx.ConnectError:
            return False

    try:
        wait_until_sync(up, timeout=30, what="the simulator over HTTPS")
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port is no way in
            httpx.get(f"http://127.0.0.1:{port}/_sim/health", timeout=2).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(10)


async def test_an_unusable_key_file_is_a_clear_error(pki: Pki, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    sim = Simulator(SimulatorOptions(dialect="restservice", port=0, tls_cert=pki.cert, tls_key=bad))
    with pytest.raises(OSError, match="TLS certificate or key"):
        await sim.start()
