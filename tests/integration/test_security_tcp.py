"""Security over real TCP: every policy, certificate trust by moving a file, certificate validity, users and
anonymous access, failed-login limits per client, the advertised endpoint behind NAT, and no password in the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography.hazmat.primitives import serialization

from bridge.opcua.security.certificates import generate_certificate
from tests.helpers import wait_until
from tests.integration.conftest import TEST_SECRETS, WRONG_PASSWORD

POLICIES = [
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128Sha256RsaOaep_Sign",
    "Aes128Sha256RsaOaep_SignAndEncrypt",
    "Aes256Sha256RsaPss_Sign",
    "Aes256Sha256RsaPss_SignAndEncrypt",
]
CLIENT_URI = "urn:wincc-opcua-bridge:test-client"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack(
        "dp", config={"opcua": {"security_policies": POLICIES, "anonymous": "none", "auto_accept_client_certs": False}}
    )


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory) -> tuple[Path, Path]:
    return _new_client_cert(tmp_path_factory)


def _new_client_cert(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("client-pki")
    cert, key = generate_certificate(CLIENT_URI, ["localhost"], "Test Client", client=True)
    cert_path, key_path = d / "client.der", d / "client.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(key)
    return cert_path, key_path


def _secure_client(stack, user: str | None, policy: str, cert: tuple[Path, Path]) -> Client:
    client = Client(stack.url_for(user), timeout=10)
    client.application_uri = CLIENT_URI
    name, _, mode = policy.partition("_")
    client._policy = (getattr(sp, f"SecurityPolicy{name}"), getattr(ua.MessageSecurityMode, mode))  # noqa: SLF001
    return client


async def _connect(client: Client, cert: tuple[Path, Path]) -> None:
    policy_class, mode = client._policy  # noqa: SLF001
    await client.set_security(policy_class, str(cert[0]), str(cert[1]), mode=mode)
    await client.connect()


async def test_unknown_certificate_rejected_then_trusted_by_moving_the_file(stack, tmp_path_factory) -> None:
    # a certificate of its own: the module's client_cert may already be trusted by the tests that use it
    client_cert = _new_client_cert(tmp_path_factory)
    client = _secure_client(stack, "reader", "Basic256Sha256_SignAndEncrypt", client_cert)
    with pytest.raises(Exception):
        await _connect(client, client_cert)
    pki = Path(stack.config["opcua"]["pki_dir"])
    mine = client_cert[0].read_bytes()
    rejected = await wait_until(
        lambda: [p for p in (pki / "rejected").glob("*.der") if p.read_bytes() == mine],
        timeout=5,
        what="rejected cert file",
    )
    assert "thumbprint" in stack.log_text() and "not trusted" in stack.log_text()
    rejected[0].rename(pki / "trusted" / rejected[0].name)
    client = _secure_client(stack, "reader", "Basic256Sha256_SignAndEncrypt", client_cert)
    await _connect(client, client_cert)
    await client.disconnect()


@pytest.mark.parametrize("policy", POLICIES)
async def test_every_policy_connects_and_reads(stack, client_cert, policy: str) -> None:
    pki = Path(stack.config["opcua"]["pki_dir"])
    trusted = pki / "trusted" / "test-client.der"
    if not trusted.exists():
        trusted.write_bytes(client_cert[0].read_bytes())
    client = _secure_client(stack, "operator", policy, client_cert)
    await _connect(client, client_cert)
    try:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        dv = await client.get_node(ua.NodeId("System1.Tank1.Level", ns)).read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.is_good() or dv.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
    finally:
        await client.disconnect()


async def test_no_none_endpoint_and_no_anonymous(stack, client_cert) -> None:
    endpoints = await Client(stack.endpoint, timeout=10).connect_and_get_server_endpoints()
    assert {e.SecurityPolicyUri for e in endpoints} and all(
        e.SecurityMode != ua.MessageSecurityMode.None_ for e in endpoints
    )
    for e in endpoints:
        assert all(t.TokenType != ua.UserTokenType.Anonymous for t in e.UserIdentityTokens)
    (pki := Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "test-client.der").write_bytes(
        client_cert[0].read_bytes()
    )
    client = _secure_client(stack, None, "Basic256Sha256_SignAndEncrypt", client_cert)
    with pytest.raises(Exception):
        await _connect(client, client_cert)
    assert pki.exists()


async def test_wrong_password_refused_and_no_password_in_logs(stack, client_cert) -> None:
    (Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "test-client.der").write_bytes(client_cert[0].read_bytes())
    host = stack.endpoint.removeprefix("opc.tcp://")
    client = Client(f"opc.tcp://operator:{WRONG_PASSWORD}@{host}", timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        sp.SecurityPolicyBasic256Sha256,
        str(client_cert[0]),
        str(client_cert[1]),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    with pytest.raises(Exception):
        await client.connect()
    await wait_until(lambda: "failed login for user 'operator'" in stack.log_text(), timeout=5)
    logs = stack.log_text() + stack.sim_log_path.read_text(errors="replace")
    for secret in TEST_SECRETS:
        assert secret not in logs


async def test_admin_without_the_password_is_refused(stack, client_cert) -> None:
    """asyncua's default user manager lets anyone named "admin" in without a password; the bridge's must not,
    over the wire, with the real admin user configured: no password, a guessed one, and an admin-ish name."""
    (Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "test-client.der").write_bytes(client_cert[0].read_bytes())
    host = stack.endpoint.removeprefix("opc.tcp://")
    for user, password in (("admin", ""), ("admin", "admin"), ("Admin", stack.users["admin"])):
        client = Client(f"opc.tcp://{host}", timeout=10)
        client.set_user(user)
        client.set_password(password)
        client.application_uri = CLIENT_URI
        await client.set_security(
            sp.SecurityPolicyBasic256Sha256,
            str(client_cert[0]),
            str(client_cert[1]),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await client.connect()
        assert refused.value.code in (
            ua.StatusCodes.BadUserAccessDenied,
            ua.StatusCodes.BadIdentityTokenRejected,
            ua.StatusCodes.BadIdentityTokenInvalid,
        ), (user, refused.value)
    # the configured admin with its password does get in
    client = _secure_client(stack, "admin", "Basic256Sha256_SignAndEncrypt", client_cert)
    await _connect(client, client_cert)
    await client.disconnect()


async def test_expired_certificate_refused_even_when_trusted(stack, tmp_path) -> None:
    cert, key = generate_certificate(
        CLIENT_URI,
        ["localhost"],
        "Old Client",
        client=True,
        not_before=datetime.now(UTC) - timedelta(days=400),
        days=365,
    )
    paths = tmp_path / "old.der", tmp_path / "old.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    paths[1].write_bytes(key)
    (Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "old-client.der").write_bytes(paths[0].read_bytes())
    client = _secure_client(stack, "reader", "Basic256Sha256_SignAndEncrypt", paths)
    with pytest.raises(ua.UaStatusCodeError) as refused:
        await _connect(client, paths)
    assert refused.value.code == ua.StatusCodes.BadCertificateTimeInvalid
    await wait_until(lambda: "BadCertificateTimeInvalid): expired on" in stack.log_text(), timeout=5)


async def test_each_refusal_is_one_warning_not_an_asyncua_error(stack, client_cert) -> None:
    """A client's mistake is logged once, at WARNING, by the bridge; asyncua's ERROR "sending service fault
    response" for it is filtered (after the refusals of the tests above: untrusted and expired certificates,
    wrong passwords, no anonymous)."""
    (Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "test-client.der").write_bytes(client_cert[0].read_bytes())
    host = stack.endpoint.removeprefix("opc.tcp://")
    client = Client(f"opc.tcp://{host}", timeout=10)
    client.set_user("nobody-7f3a")
    client.set_password(WRONG_PASSWORD)
    client.application_uri = CLIENT_URI
    await client.set_security(
        sp.SecurityPolicyBasic256Sha256,
        str(client_cert[0]),
        str(client_cert[1]),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    with pytest.raises(ua.UaStatusCodeError):
        await client.connect()
    await wait_until(lambda: "'nobody-7f3a'" in stack.log_text(), timeout=5)
    lines = stack.log_text().splitlines()
    about = [line for line in lines if "nobody-7f3a" in line]
    assert len(about) == 1 and " WARNING " in about[0], about
    assert not [line for line in lines if "sending service fault response" in line]
    assert not [line for line in lines if " ERROR " in line and "asyncua" in line]


# ---- a bridge behind NAT (public_hostname) with a low failed-login limit ---------------------------------------
PUBLIC_HOST = "scada.plant.example"
LIMIT = 3


@pytest.fixture(scope="module")
def nat_stack(bridge_stack):
    return bridge_stack("dp", config={"opcua": {"public_hostname": PUBLIC_HOST, "failed_login_limit": LIMIT}})


async def test_get_endpoints_advertises_public_hostname(nat_stack) -> None:
    port = nat_stack.endpoint.rsplit(":", 1)[1].split("/")[0]
    # the client asks for 127.0.0.1; asyncua would echo that back, but clients behind NAT must get the public name
    endpoints = await Client(nat_stack.endpoint, timeout=10).connect_and_get_server_endpoints()
    assert endpoints
    for e in endpoints:
        assert e.EndpointUrl == f"opc.tcp://{PUBLIC_HOST}:{port}/wincc"
        assert all(u.startswith(f"opc.tcp://{PUBLIC_HOST}:{port}") for u in e.Server.DiscoveryUrls)


async def test_wrong_passwords_lock_that_user_for_this_client(nat_stack) -> None:
    host = nat_stack.endpoint.removeprefix("opc.tcp://")
    for _ in range(LIMIT):
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await Client(f"opc.tcp://operator:{WRONG_PASSWORD}@{host}", timeout=10).connect()
        assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    # the right password, from the same client, within the minute: still refused
    with pytest.raises(ua.UaStatusCodeError) as refused:
        await Client(nat_stack.url_for("operator"), timeout=10).connect()
    assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
    await wait_until(lambda: "login for user 'operator' from 127.0.0.1 refused" in nat_stack.log_text(), timeout=5)
    # only that user name is locked for this client (the whole address after 3x as many failures)
    client = Client(nat_stack.url_for("reader"), timeout=10)
    await client.connect()
    await client.disconnect()
