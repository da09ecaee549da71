"""SecurityPolicy None, where a site lists it, ignores the client's certificate (Part 4, CreateSession), while a
secured endpoint of the same server still refuses the same untrusted certificate. node-opcua does the same in
tests/interop/test_node_opcua_secured.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bridge.opcua.security.certificates import generate_certificate

CLIENT_URI = "urn:wincc-opcua-bridge:untrusted-client"
NS_URI = "urn:wincc-opcua-bridge:tags"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack(
        "dp",
        config={
            "opcua": {
                "security_policies": ["None", "Basic256Sha256_SignAndEncrypt"],
                "auto_accept_client_certs": False,
                "anonymous": "read",
            }
        },
    )


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("untrusted-client")
    cert, key = generate_certificate(CLIENT_URI, ["localhost"], "Untrusted Client", client=True)
    (d / "client.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (d / "client.pem").write_bytes(key)
    return d / "client.der", d / "client.pem"


def _rejected(stack) -> list[Path]:
    return list((Path(stack.config["opcua"]["pki_dir"]) / "rejected").glob("*.der"))


async def test_none_ignores_an_untrusted_client_certificate(stack, untrusted) -> None:
    client = Client(stack.endpoint, timeout=10)
    client.application_uri = CLIENT_URI
    # asyncua sends this certificate in CreateSession on None (as UaExpert and node-opcua do)
    client.user_certificate = x509.load_der_x509_certificate(untrusted[0].read_bytes())
    await client.connect()
    try:
        ns = await client.get_namespace_index(NS_URI)
        dv = await client.get_node(ua.NodeId("System1.Tank1.Level", ns)).read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.is_good() or dv.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData
    finally:
        await client.disconnect()
    assert _rejected(stack) == []  # ignored, not judged
    assert "not trusted" not in stack.log_text()


async def test_secured_endpoint_still_refuses_the_same_certificate(stack, untrusted) -> None:
    client = Client(stack.url_for("reader"), timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        sp.SecurityPolicyBasic256Sha256,
        str(untrusted[0]),
        str(untrusted[1]),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    with pytest.raises(Exception) as refused:
        await client.connect()
    assert "BadCertificateUntrusted" in repr(refused.value) or "not trusted" in stack.log_text()
    assert len(_rejected(stack)) == 1
