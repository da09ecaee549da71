"""Security against a hostile client, over real TCP against a real bridge process (and real HTTPS for WinCC):
password guessing against one user and across many names (the lock-out holds, other addresses still log in), a
100 KB user name (logged cut short), the private key's file modes, a WinCC certificate that does not match, no
secret in any log line, an audit line for every write.

Client addresses: the loopback net is 127.0.0.0/8, so each attacker gets an address of its own (the lock-out is
per client address), set as the local address of asyncua's connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bridge.config import WinCCConfig
from bridge.simulator import Simulator, SimulatorOptions
from bridge.wincc.client import open_client
from bridge.wincc.errors import WinCCUnreachable
from tests.helpers import wait_until
from tests.integration.conftest import TEST_PASSWORDS, WRONG_PASSWORD, Stack, bridge_stack  # noqa: F401
from tests.reliability.uaraw import Reader, metric
from tests.tls_helpers import issue, key_pem, make_ca, pem

S = ua.StatusCodes
LIMIT = 3  # opcua.failed_login_limit here; the whole address locks after 3x as many failures over all names
FLOOD = 20  # concurrent logins with the right password
TLS_PW = "tls-Pw-31"  # the simulator's WinCC password (listed in TEST_SECRETS for test_simulator_tls.py)


@pytest.fixture(scope="module")
def stack(bridge_stack: Callable[..., Stack]) -> Stack:  # noqa: F811
    return bridge_stack("dp", config={"opcua": {"failed_login_limit": LIMIT}})


@contextmanager
def from_address(ip: str) -> Iterator[None]:
    """Connections made by this event loop meanwhile leave from `ip` (a loopback address)."""
    loop = asyncio.get_running_loop()
    original = loop.create_connection

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("local_addr", (ip, 0))
        return await original(*args, **kwargs)

    loop.create_connection = create_connection  # type: ignore[method-assign]
    try:
        yield
    finally:
        del loop.create_connection


async def login(stack: Stack, user: str, password: str) -> int:
    """The StatusCode of a login attempt (Good = logged in)."""
    host = stack.endpoint.removeprefix("opc.tcp://")
    client = Client(f"opc.tcp://{host}", timeout=20)
    client.set_user(user)
    client.set_password(password)
    try:
        await client.connect()
    except ua.UaStatusCodeError as refused:
        return refused.code
    await client.disconnect()
    return S.Good


async def test_guessing_one_users_password_locks_that_user_for_that_address_only(stack: Stack) -> None:
    with from_address("127.0.0.5"):
        for _ in range(LIMIT + 5):
            assert await login(stack, "operator", WRONG_PASSWORD) == S.BadUserAccessDenied
        # the right password from the guessing address: refused while the lock holds
        assert await login(stack, "operator", TEST_PASSWORDS["operator"]) == S.BadUserAccessDenied
        # another user from that address is not locked (only 3 x LIMIT failures over all names lock the address)
        assert await login(stack, "reader", TEST_PASSWORDS["reader"]) == S.Good
    with from_address("127.0.0.6"):  # the same user from elsewhere
        assert await login(stack, "operator", TEST_PASSWORDS["operator"]) == S.Good
    await wait_until(lambda: "login for user 'operator' from 127.0.0.5 refused" in stack.log_text(), timeout=5)
    # while locked, attempts are refused without checking the password: exactly LIMIT failures were checked
    # before the lock (each logs "failed login"), the rest only the refusal
    failed = [ln for ln in stack.log_text().splitlines() if "failed login for user 'operator' from 127.0.0.5" in ln]
    assert len(failed) == LIMIT


async def test_guessing_across_many_names_locks_the_address(stack: Stack) -> None:
    with from_address("127.0.0.7"):
        for i in range(3 * LIMIT + 3):
            assert await login(stack, f"guess{i:03d}", WRONG_PASSWORD) == S.BadUserAccessDenied
        assert await login(stack, "reader", TEST_PASSWORDS["reader"]) == S.BadUserAccessDenied
    with from_address("127.0.0.8"):
        assert await login(stack, "reader", TEST_PASSWORDS["reader"]) == S.Good


async def test_a_100_kb_user_name_is_logged_cut_short(stack: Stack) -> None:
    name = "N" * 100_000
    with from_address("127.0.0.9"):
        for _ in range(LIMIT + 2):
            assert await login(stack, name, WRONG_PASSWORD) == S.BadUserAccessDenied
    await wait_until(lambda: "(100000 chars)" in stack.log_text(), timeout=5)
    lines = [ln for ln in stack.log_text().splitlines() if "NNNNNNNN" in ln]
    assert len(lines) >= LIMIT and all(len(ln) < 400 for ln in lines), max(len(ln) for ln in lines)
    assert any("refused" in ln for ln in lines)  # the lock-out holds for such a name too


async def test_a_login_flood_does_not_hold_up_other_sessions(stack: Stack) -> None:
    """20 logins at once cost ~20 scrypt checks (~60 ms of CPU each): run on the event loop they held every other
    client up for over a second; beside it, the reader connected before keeps being answered promptly, and every
    login gets its own right answer."""
    await wait_until(lambda: metric(stack, "event_loop_lag_seconds") < 0.25, timeout=30, what="a calm loop first")
    reader, stop = Reader(stack), asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        await wait_until(lambda: reader.reads >= 3, timeout=30, what="the reader's first reads")
        reader.slowest = 0.0  # its own login is not what is measured
        with from_address("127.0.0.40"):
            right = [login(stack, "operator", TEST_PASSWORDS["operator"]) for _ in range(FLOOD)]
            wrong = [login(stack, "admin", WRONG_PASSWORD) for _ in range(LIMIT - 1)]  # under the lock-out limit
            answers = await asyncio.gather(*right, *wrong)
        lag = metric(stack, "event_loop_lag_seconds")
    finally:
        stop.set()
        await task
    print(
        f"MEASURED {FLOOD + LIMIT - 1} logins at once: slowest other read {reader.slowest:.3f} s, loop lag {lag:.3f} s"
    )
    assert answers == [S.Good] * FLOOD + [S.BadUserAccessDenied] * (LIMIT - 1)
    assert reader.failures == []
    # ~20 x 60 ms = 1.2 s when the checks held the loop; the bound leaves a shared machine room for scheduling
    assert reader.slowest < 0.6, f"a read took {reader.slowest:.2f} s while {FLOOD} logins were checked"
    assert lag < 0.6, f"the event loop ran {lag:.2f} s late while {FLOOD} logins were checked"


def test_the_private_key_is_0600_in_a_0700_folder(stack: Stack) -> None:
    pki = Path(stack.config["opcua"]["pki_dir"])
    keys = list(pki.rglob("*.pem"))
    assert keys, f"no key under {pki}"
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700, key.parent


async def test_every_write_has_an_audit_line(stack: Stack) -> None:
    tags = {
        "System1.Tank1.LevelSetpoint": [1.5, 2.5, 99.0, "text"],
        "System1.Status.Text": ["a", "b" * 70_000],
        "System1.Tank1.Level": [3.0],
    }  # out of range, a type mismatch, too long, read-only
    writes = 0
    async with Client(stack.url_for("operator"), timeout=20) as client:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        for name, values in tags.items():
            for value in values:
                vt = ua.VariantType.String if isinstance(value, str) else ua.VariantType.Double
                dv = ua.DataValue(ua.Variant(value, vt))
                await client.uaclient.write(
                    ua.WriteParameters(
                        NodesToWrite=[
                            ua.WriteValue(NodeId=ua.NodeId(name, ns), AttributeId=ua.AttributeIds.Value, Value=dv)
                        ]
                    )
                )
                writes += 1

    def audit() -> list[str]:
        return [
            ln
            for ln in stack.log_text().splitlines()
            if "bridge.audit.write" in ln and "write user=operator tag='System1." in ln
        ]

    lines = await wait_until(lambda: len(audit()) >= writes and audit(), timeout=5)
    assert len(lines) == writes
    results = [ln.rsplit("result=", 1)[1].split()[0] for ln in lines]
    assert results == ["Good", "Good", "BadOutOfRange", "BadTypeMismatch", "Good", "BadOutOfRange", "BadNotWritable"]


def test_no_secret_in_this_bridges_log(stack: Stack) -> None:
    text = stack.log_text()
    assert text
    for secret in (*TEST_PASSWORDS.values(), WRONG_PASSWORD):
        assert secret not in text


# ---- WinCC over HTTPS: a certificate that does not match is refused -------------------------------------------------
def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, san: x509.GeneralName, days: tuple[int, int] = (-1, 1)
) -> tuple[bytes, bytes]:
    key, cert = issue(ca_key, ca, san, days=days)
    return pem(cert), key_pem(key)


@pytest.fixture(scope="module")
def site_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key, ca = make_ca()
    path = tmp_path_factory.mktemp("site-ca") / "ca.pem"
    path.write_bytes(pem(ca))
    return path, key, ca


@asynccontextmanager
async def https_wincc(tmp: Path, cert_key: tuple[bytes, bytes]) -> AsyncIterator[Simulator]:
    (tmp / "server.pem").write_bytes(cert_key[0])
    (tmp / "server.key").write_bytes(cert_key[1])
    sim = Simulator(
        SimulatorOptions(
            dialect="restservice",
            port=0,
            auth="basic",
            password=TLS_PW,
            tls_cert=tmp / "server.pem",
            tls_key=tmp / "server.key",
        )
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def _read_with_site_ca(sim: Simulator, ca: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SIM_TLS_PW", TLS_PW)
    cfg = WinCCConfig.model_validate(
        {
            "url": sim.url,
            "dialect": "restservice",
            "tls": {"ca_file": str(ca)},
            "retry": {"attempts": 1},
            "timeouts": {"connect_s": 2, "read_s": 2, "write_s": 2},
            "auth": {"mode": "basic", "username": "opcua", "password_env": "SIM_TLS_PW"},
        }
    )
    async with open_client(cfg) as client:
        return await client.read(["Tank1_Level"])


@pytest.mark.parametrize("case", ["another host name", "another IP address", "expired", "not yet valid"])
async def test_a_wincc_certificate_that_does_not_match_is_refused(
    site_ca: Any, tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_path, ca_key, ca = site_ca
    here = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    cert = {
        "another host name": lambda: _issue(ca_key, ca, x509.DNSName("wincc.other.example")),
        "another IP address": lambda: _issue(ca_key, ca, x509.IPAddress(ipaddress.ip_address("10.9.8.7"))),
        "expired": lambda: _issue(ca_key, ca, here, days=(-3, -1)),
        "not yet valid": lambda: _issue(ca_key, ca, here, days=(1, 3)),
    }[case]()
    async with https_wincc(tmp_path, cert) as sim:
        with pytest.raises(WinCCUnreachable, match="(?i)certificate"):
            await _read_with_site_ca(sim, ca_path, monkeypatch)
        assert sim.stats.requests["POST /tagManagement/Values"] == 0


async def test_the_matching_certificate_from_the_same_ca_is_accepted(
    site_ca: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_path, ca_key, ca = site_ca
    cert = _issue(ca_key, ca, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    async with https_wincc(tmp_path, cert) as sim:
        values = await _read_with_site_ca(sim, ca_path, monkeypatch)
    assert set(values) == {"Tank1_Level"}
