"""Security over real TCP: every policy, certificate trust by moving a file, users and anonymous access, and no
password in any log."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography.hazmat.primitives import serialization

from bridge.opcua.certificates import generate_certificate
from tests.helpers import wait_until

POLICIES = ["Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt", "Aes128Sha256RsaOaep_Sign",
            "Aes128Sha256RsaOaep_SignAndEncrypt", "Aes256Sha256RsaPss_Sign", "Aes256Sha256RsaPss_SignAndEncrypt"]
CLIENT_URI = "urn:wincc-opcua-bridge:test-client"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("dp", config={"opcua": {"security_policies": POLICIES, "anonymous": "none",
                                                "auto_accept_client_certs": False}})


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory) -> tuple[Path, Path]:
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


async def test_unknown_certificate_rejected_then_trusted_by_moving_the_file(stack, client_cert) -> None:
    client = _secure_client(stack, "reader", "Basic256Sha256_SignAndEncrypt", client_cert)
    with pytest.raises(Exception):
        await _connect(client, client_cert)
    pki = Path(stack.config["opcua"]["pki_dir"])
    rejected = await wait_until(lambda: list((pki / "rejected").glob("*.der")), timeout=5, what="rejected cert file")
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
        e.SecurityMode != ua.MessageSecurityMode.None_ for e in endpoints)
    for e in endpoints:
        assert all(t.TokenType != ua.UserTokenType.Anonymous for t in e.UserIdentityTokens)
    (pki := Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "test-client.der").write_bytes(
        client_cert[0].read_bytes())
    client = _secure_client(stack, None, "Basic256Sha256_SignAndEncrypt", client_cert)
    with pytest.raises(Exception):
        await _connect(client, client_cert)
    assert pki.exists()


async def test_wrong_password_refused_and_no_password_in_logs(stack, client_cert) -> None:
    (Path(stack.config["opcua"]["pki_dir"]) / "trusted" / "test-client.der").write_bytes(client_cert[0].read_bytes())
    host = stack.endpoint.removeprefix("opc.tcp://")
    client = Client(f"opc.tcp://operator:Wrong-Pw-123@{host}", timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(sp.SecurityPolicyBasic256Sha256, str(client_cert[0]), str(client_cert[1]),
                              mode=ua.MessageSecurityMode.SignAndEncrypt)
    with pytest.raises(Exception):
        await client.connect()
    await wait_until(lambda: "failed login for user 'operator'" in stack.log_text(), timeout=5)
    logs = stack.log_text() + stack.sim_log_path.read_text(errors="replace")
    for secret in [*stack.users.values(), "Wrong-Pw-123", "wincc-Pw-2b8d"]:
        assert secret not in logs
